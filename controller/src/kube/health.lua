-- Argo CD health of the r1 kinds (deeploy.ratio1.ai): DeeployJob, DeeployProject, Tunnel, Escrow.
local hs = {status = "Progressing", message = "waiting for the oracle"}
if obj.status == nil then
  return hs
end
local function condition(name)
  for _, c in ipairs(obj.status.conditions or {}) do
    if c.type == name then
      return c
    end
  end
  return nil
end
local function says(status, message)
  hs.status = status
  if message ~= nil and message ~= "" then
    hs.message = message
  end
  return hs
end
-- Valid: whether the oracle accepted this generation (False: refused, Unknown: waiting).
local valid = condition("Valid")
if valid ~= nil and valid.status == "False" then
  return says("Degraded", valid.message)
end
if valid == nil or valid.status ~= "True" then
  return says("Progressing", valid and valid.message)
end
local observed = obj.status.observedGeneration
local generation = obj.metadata.generation
if observed ~= nil and generation ~= nil and observed < generation then
  return says("Progressing", "the oracle has not acted on generation " .. generation .. " yet")
end
local phase = obj.status.phase
if obj.kind == "DeeployJob" then
  -- What holds the job up: the first condition that is False (Degraded is False when all is well).
  local blocker = nil
  for _, c in ipairs(obj.status.conditions or {}) do
    if blocker == nil and c.status == "False" and c.type ~= "Degraded" then
      blocker = c
    end
  end
  local why = blocker and blocker.message
  local degraded = condition("Degraded")
  local rollout = condition("RolledOut")
  if phase == "Failed" or phase == "Degraded" then
    return says("Degraded", (degraded and degraded.status == "True" and degraded.message) or why)
  elseif degraded ~= nil and degraded.status == "True" then
    return says("Degraded", degraded.message)
  elseif rollout ~= nil and rollout.status == "False" and rollout.reason == "RolloutFailed" then
    return says("Degraded", rollout.message)
  elseif phase == "Running" then
    if rollout ~= nil and rollout.status == "False" then
      return says("Progressing", rollout.message)
    end
    return says("Healthy", (obj.status.ready or "all") .. " replicas running")
  elseif phase == "Pending" or phase == "Funded" or phase == "Scheduled" then
    return says("Progressing", why or phase)
  elseif phase == "Closing" then
    return says("Progressing", "closing on chain")
  elseif phase == "Closed" then
    return says("Suspended", "closed on chain; nothing runs")
  elseif phase == nil then
    return says("Progressing", "accepted; waiting for the oracle")
  end
  return says("Unknown", "unknown phase " .. tostring(phase))
elseif obj.kind == "DeeployProject" then
  return says("Healthy", (obj.status.jobCount or 0) .. " jobs")
elseif obj.kind == "Tunnel" then
  local ready = condition("Ready")
  if phase == "Ready" or phase == nil then
    return says("Healthy", obj.status.url or "accepted")
  elseif phase == "Pending" then
    return says("Progressing", (ready and ready.message) or "not used by a running job yet")
  elseif phase == "Failed" then
    return says("Degraded", ready and ready.message)
  end
  return says("Unknown", "unknown phase " .. tostring(phase))
elseif obj.kind == "Escrow" then
  local ready = condition("Ready")
  if phase == "Ready" or phase == nil then
    return says("Healthy", (ready and ready.message) or "accepted")
  elseif phase == "Pending" then
    return says("Progressing", ready and ready.message)
  elseif phase == "Unknown" then
    return says("Unknown", "the chain cannot be read; last known figures are kept")
  elseif phase == "Failed" then
    return says("Degraded", ready and ready.message)
  end
  return says("Unknown", "unknown phase " .. tostring(phase))
end
return hs
