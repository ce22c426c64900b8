//! Checks that a CRD's OpenAPI schema is *structural*, as the Kubernetes API server requires:
//! every field typed, logical junctors only in the int-or-string pattern, no `$ref`, and
//! `x-kubernetes-preserve-unknown-fields` nowhere unless a field is explicitly allowed to be
//! free-form.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// Every violation in `schema`, each as `path: reason`. `free_form` lists the paths where
/// `x-kubernetes-preserve-unknown-fields` is intended.
pub fn violations(schema: &JSONSchemaProps, free_form: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    walk(schema, "", free_form, &mut found);
    found
}

fn walk(schema: &JSONSchemaProps, path: &str, free_form: &[&str], found: &mut Vec<String>) {
    let at = if path.is_empty() { "<root>" } else { path };
    let int_or_string = schema.x_kubernetes_int_or_string == Some(true);
    let preserve = schema.x_kubernetes_preserve_unknown_fields == Some(true);
    if preserve && !free_form.contains(&path) {
        found.push(format!(
            "{at}: x-kubernetes-preserve-unknown-fields is not meant here"
        ));
    }
    if schema.type_.as_deref().is_none_or(str::is_empty) && !int_or_string && !preserve {
        found.push(format!("{at}: has no type"));
    }
    if schema.ref_path.is_some() {
        found.push(format!("{at}: uses $ref"));
    }
    if schema.properties.is_some() && schema.additional_properties.is_some() {
        found.push(format!(
            "{at}: sets both properties and additionalProperties"
        ));
    }
    if schema.one_of.is_some() || schema.all_of.is_some() || schema.not.is_some() {
        found.push(format!("{at}: oneOf/allOf/not are not structural here"));
    }
    if let Some(any_of) = &schema.any_of {
        let is_pattern = int_or_string
            && any_of.len() == 2
            && any_of.iter().all(|s| {
                matches!(s.type_.as_deref(), Some("integer" | "string"))
                    && s.properties.is_none()
                    && s.items.is_none()
                    && s.description.is_none()
                    && s.default.is_none()
            });
        if !is_pattern {
            found.push(format!(
                "{at}: anyOf is only allowed as the int-or-string pattern"
            ));
        }
    }
    if let Some(properties) = &schema.properties {
        for (name, child) in properties {
            let child_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            walk(child, &child_path, free_form, found);
        }
    }
    match &schema.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => {
            walk(item, &format!("{path}[]"), free_form, found)
        }
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            for item in items {
                walk(item, &format!("{path}[]"), free_form, found);
            }
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = &schema.additional_properties {
        walk(values, &format!("{path}.*"), free_form, found);
    }
}
