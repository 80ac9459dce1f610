//! The Kibana saved objects in `dashboards/*.ndjson`:
//! - every line is a saved object with a unique `(type, id)`;
//! - every reference resolves to an object of the same file, and every `*RefName`
//!   (`savedSearchRefName`, `indexRefName` in searchSourceJSON, `panelRefName` in
//!   panelsJSON) names one of the object's references;
//! - the fields the visualisations aggregate on (and the searches query) are exactly
//!   those listed in `dashboards/fields.json`, and each is in the index template's
//!   mapping `elk/fluentd-template.json` (a later test can check the list against a live
//!   Elasticsearch/OpenSearch mapping).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn objects() -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A JSON document stored as a string attribute.
fn inner(obj: &Value, pointer: &str) -> Option<Value> {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .map(|s| serde_json::from_str(s).unwrap_or_else(|e| panic!("{pointer}: {e}")))
}

/// Field names of a KQL query (`field: value`, `field >= n`).
fn kql_fields(q: &str) -> BTreeSet<String> {
    let tokens: Vec<&str> = q.split_whitespace().collect();
    let mut out = BTreeSet::new();
    for (i, t) in tokens.iter().enumerate() {
        if let Some((f, _)) = t.split_once(':') {
            if !f.is_empty() && !f.starts_with('"') {
                out.insert(f.to_owned());
            }
        } else if tokens
            .get(i + 1)
            .is_some_and(|n| matches!(*n, ">=" | "<=" | ">" | "<"))
        {
            out.insert((*t).to_owned());
        }
    }
    out
}

#[test]
fn references_resolve_inside_the_files() {
    let objs = objects();
    let ids: BTreeSet<(String, String)> = objs
        .iter()
        .map(|o| {
            (
                o["type"].as_str().unwrap().to_owned(),
                o["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(ids.len(), objs.len(), "duplicate (type, id)");
    for o in &objs {
        let id = o["id"].as_str().unwrap();
        assert!(o["attributes"]["title"].is_string(), "{id}: title");
        let refs = o["references"].as_array().expect("references");
        let names: BTreeSet<&str> = refs.iter().map(|r| r["name"].as_str().unwrap()).collect();
        for r in refs {
            let key = (
                r["type"].as_str().unwrap().to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            );
            assert!(
                ids.contains(&key),
                "{id}: reference {key:?} is not in the files"
            );
        }
        let mut used = vec![];
        if let Some(n) = o["attributes"]["savedSearchRefName"].as_str() {
            used.push(n.to_owned());
        }
        if let Some(ss) = inner(o, "/attributes/kibanaSavedObjectMeta/searchSourceJSON") {
            assert!(
                ss.get("index").is_none(),
                "{id}: raw index id instead of indexRefName"
            );
            if let Some(n) = ss["indexRefName"].as_str() {
                used.push(n.to_owned());
            }
        }
        if let Some(panels) = inner(o, "/attributes/panelsJSON") {
            for p in panels.as_array().unwrap() {
                used.push(p["panelRefName"].as_str().expect("panelRefName").to_owned());
            }
        }
        for n in &used {
            assert!(
                names.contains(n.as_str()),
                "{id}: {n} is not among its references"
            );
        }
        if o["type"] == "visualization" || o["type"] == "search" {
            assert_eq!(
                used.len(),
                1,
                "{id}: one data source (search or index pattern)"
            );
        }
    }
}

/// `{"index_pattern", "time_field", "aggregated": {field: [agg types]}, "queried": [fields]}`.
fn fields_in_use(objs: &[Value]) -> Value {
    let mut aggregated: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut queried: BTreeSet<String> = BTreeSet::new();
    let mut pattern = json!(null);
    for o in objs {
        match o["type"].as_str().unwrap() {
            "index-pattern" => {
                pattern = json!({
                    "title": o["attributes"]["title"],
                    "time_field": o["attributes"]["timeFieldName"],
                })
            }
            "visualization" => {
                let vis = inner(o, "/attributes/visState").unwrap();
                for agg in vis["aggs"].as_array().unwrap() {
                    let ty = agg["type"].as_str().unwrap().to_owned();
                    if let Some(f) = agg["params"]["field"].as_str() {
                        aggregated
                            .entry(f.to_owned())
                            .or_default()
                            .insert(ty.clone());
                    }
                    for flt in agg["params"]["filters"].as_array().into_iter().flatten() {
                        for f in kql_fields(flt["input"]["query"].as_str().unwrap()) {
                            aggregated.entry(f).or_default().insert(ty.clone());
                        }
                    }
                }
            }
            "search" => {
                let ss = inner(o, "/attributes/kibanaSavedObjectMeta/searchSourceJSON").unwrap();
                queried.extend(kql_fields(ss["query"]["query"].as_str().unwrap_or("")));
                for c in o["attributes"]["columns"].as_array().unwrap() {
                    queried.insert(c.as_str().unwrap().to_owned());
                }
            }
            _ => {}
        }
    }
    json!({"index_pattern": pattern, "aggregated": aggregated, "queried": queried})
}

#[test]
fn fields_json_lists_the_fields_in_use_and_the_template_maps_them() {
    let objs = objects();
    let got = fields_in_use(&objs);
    let path = root().join("dashboards/fields.json");
    if std::env::var_os("UPDATE_DASHBOARD_FIELDS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        got, want,
        "dashboards/fields.json is stale: rerun with UPDATE_DASHBOARD_FIELDS=1"
    );

    let template: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("elk/fluentd-template.json")).unwrap(),
    )
    .unwrap();
    let props = &template["template"]["mappings"]["properties"];
    let mut all: BTreeSet<String> = got["aggregated"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    all.extend(
        got["queried"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned()),
    );
    all.insert(
        got["index_pattern"]["time_field"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    for f in &all {
        assert!(
            props.get(f).is_some(),
            "{f} is not in elk/fluentd-template.json"
        );
    }
    // Aggregated fields must be aggregatable: not plain `text`.
    for f in got["aggregated"].as_object().unwrap().keys() {
        assert_ne!(
            props[f]["type"], "text",
            "{f} is text: aggregate on a keyword/number"
        );
    }
    let patterns = template["index_patterns"].as_array().unwrap();
    assert!(patterns.contains(&got["index_pattern"]["title"]));
}

#[test]
fn kql_field_extraction() {
    assert_eq!(
        kql_fields(r#"msg:"request completed" and status >= 500"#),
        ["msg", "status"].into_iter().map(String::from).collect()
    );
}
