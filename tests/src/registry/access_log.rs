//! Reading the registry's access log (combined log format, one line per answered request).

/// How many lines of `log` record a `GET` of a blob (`/v2/<name>/blobs/sha256:…`) answered
/// with a 2xx status, i.e. blob bytes the registry served.
pub(super) fn blob_downloads(log: &str) -> u64 {
    let served = log.lines().filter(|line| is_served_blob_get(line));
    u64::try_from(served.count()).unwrap_or(u64::MAX)
}

/// Whether one access-log line is a blob `GET` answered with 2xx, e.g.
/// `127.0.0.1 - - [date] "GET /v2/r/blobs/sha256:ab… HTTP/1.1" 200 1234 "" "agent"`.
fn is_served_blob_get(line: &str) -> bool {
    let Some((_, rest)) = line.split_once("\"GET ") else {
        return false;
    };
    let Some((request, after)) = rest.split_once('"') else {
        return false;
    };
    let path = request.split(' ').next().unwrap_or_default();
    let is_blob = path.starts_with("/v2/") && path.contains("/blobs/sha256:");
    let status = after.split_whitespace().next().unwrap_or_default();
    is_blob && status.len() == 3 && status.starts_with('2')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_answered_blob_gets() {
        let blob = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let log = [
            format!(r#"127.0.0.1 - - [1/Jan/2024] "GET /v2/r/blobs/{blob} HTTP/1.1" 200 5 "" "a""#),
            format!(
                r#"127.0.0.1 - - [1/Jan/2024] "HEAD /v2/r/blobs/{blob} HTTP/1.1" 200 0 "" "a""#
            ),
            format!(r#"127.0.0.1 - - [1/Jan/2024] "GET /v2/r/blobs/{blob} HTTP/1.1" 404 9 "" "a""#),
            r#"127.0.0.1 - - [1/Jan/2024] "GET /v2/r/manifests/1 HTTP/1.1" 200 9 "" "a""#.into(),
            r#"time="2024" level=info msg="response completed" http.request.method=GET"#.into(),
            format!(r#"127.0.0.1 - - [1/Jan/2024] "GET /v2/r/blobs/{blob} HTTP/1.1" 206 5 "" "a""#),
        ]
        .join("\n");
        assert_eq!(blob_downloads(&log), 2);
    }
}
