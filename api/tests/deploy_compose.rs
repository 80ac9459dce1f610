//! Static validation of the compose files (no Docker engine is needed).
//!
//! Guarantees, for `docker-compose.yml` and `docker-compose-logging.yml`:
//! - each validates against the pinned Compose Specification schema in
//!   `deploy/compose-spec.json` (see `deploy/README.md` for its source);
//! - every `depends_on` target is a service of the same file, and conditions
//!   are consistent (`service_healthy` targets have a healthcheck,
//!   `service_completed_successfully` targets are one-off);
//! - every build context/dockerfile, `env_file` and bind-mounted host path exists;
//! - every service running the api image gets an environment that
//!   `api::config::Settings::from_env_map` accepts, names a real database
//!   server (not the embedded SQLite default) and sets `REDIS_URL`;
//! - published host ports (per protocol) don't clash within a file;
//! - in the logging file, every api-image service logs with the fluentd driver
//!   to the port the `fluentd` service publishes, tagged `docker.{{.Name}}`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

const COMPOSE_FILES: &[&str] = &["docker-compose.yml", "docker-compose-logging.yml"];
const API_IMAGE: &str = "api:0.1";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The compose file as JSON, with YAML anchors and `<<` merge keys resolved.
fn load(file: &str) -> Json {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let mut yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    yaml.apply_merge().unwrap();
    serde_json::to_value(yaml).unwrap()
}

fn services(doc: &Json) -> &serde_json::Map<String, Json> {
    doc["services"].as_object().expect("services")
}

/// Environment of a service as a map (both the mapping and the list form).
fn environment(svc: &Json) -> HashMap<String, String> {
    let mut out = HashMap::new();
    match &svc["environment"] {
        Json::Object(m) => {
            for (k, v) in m {
                let v = match v {
                    Json::String(s) => s.clone(),
                    Json::Null => String::new(),
                    other => other.to_string(),
                };
                out.insert(k.clone(), v);
            }
        }
        Json::Array(items) => {
            for item in items {
                let s = item.as_str().unwrap();
                let (k, v) = s.split_once('=').unwrap_or((s, ""));
                out.insert(k.to_owned(), v.to_owned());
            }
        }
        Json::Null => {}
        other => panic!("environment: {other}"),
    }
    out
}

fn depends_on(svc: &Json) -> Vec<(String, String)> {
    match &svc["depends_on"] {
        Json::Array(a) => a
            .iter()
            .map(|s| (s.as_str().unwrap().to_owned(), "service_started".to_owned()))
            .collect(),
        Json::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let cond = v["condition"].as_str().unwrap_or("service_started");
                (k.clone(), cond.to_owned())
            })
            .collect(),
        _ => vec![],
    }
}

fn is_api_image(svc: &Json) -> bool {
    svc["image"].as_str() == Some(API_IMAGE)
        || svc["build"]["dockerfile"].as_str() == Some("api/Dockerfile")
}

/// `(host_port, protocol)` pairs a service publishes.
fn published_ports(svc: &Json) -> Vec<(u16, String)> {
    let mut out = vec![];
    for p in svc["ports"].as_array().into_iter().flatten() {
        match p {
            Json::String(s) => {
                let (spec, proto) = s.split_once('/').unwrap_or((s, "tcp"));
                let parts: Vec<&str> = spec.split(':').collect();
                // "container", "host:container" or "ip:host:container"
                if parts.len() >= 2 {
                    let host = parts[parts.len() - 2];
                    out.push((host.parse().expect(s), proto.to_owned()));
                }
            }
            Json::Object(m) => {
                if let Some(published) = m.get("published") {
                    let port = match published {
                        Json::String(s) => s.parse().unwrap(),
                        n => n.as_u64().unwrap() as u16,
                    };
                    let proto = m.get("protocol").and_then(Json::as_str).unwrap_or("tcp");
                    out.push((port, proto.to_owned()));
                }
            }
            Json::Number(_) => {}
            other => panic!("ports entry {other}"),
        }
    }
    out
}

#[test]
fn compose_files_match_the_pinned_compose_spec_schema() {
    let schema: Json = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/compose-spec.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for file in COMPOSE_FILES {
        let doc = load(file);
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:#?}");
    }
    // The schema is not vacuous: an unknown service key is rejected.
    let mut bad = load("docker-compose.yml");
    bad["services"]["api"]["not_a_compose_key"] = Json::Bool(true);
    assert!(!validator.is_valid(&bad));
}

#[test]
fn depends_on_targets_exist_and_conditions_fit() {
    for file in COMPOSE_FILES {
        let doc = load(file);
        let svcs = services(&doc);
        for (name, svc) in svcs {
            for (dep, cond) in depends_on(svc) {
                let target = svcs
                    .get(&dep)
                    .unwrap_or_else(|| panic!("{file}: {name} depends on unknown {dep}"));
                match cond.as_str() {
                    "service_healthy" => {
                        // Either its own healthcheck or the image's (api/logship images).
                        let hc = &target["healthcheck"];
                        let own = hc["test"].is_array() || hc["test"].is_string();
                        let disabled = hc["disable"].as_bool() == Some(true);
                        assert!(
                            !disabled && (own || is_api_image(target)),
                            "{file}: {name} waits for {dep} to be healthy, but it has no healthcheck"
                        );
                    }
                    "service_completed_successfully" => {
                        assert_eq!(
                            target["restart"].as_str(),
                            Some("no"),
                            "{file}: {name} waits for {dep} to complete; it must be one-off"
                        );
                    }
                    "service_started" => {}
                    other => panic!("{file}: unknown condition {other}"),
                }
            }
        }
        // No cycles: a topological order exists.
        let mut done: BTreeSet<String> = BTreeSet::new();
        while done.len() < svcs.len() {
            let before = done.len();
            for (name, svc) in svcs {
                if !done.contains(name) && depends_on(svc).iter().all(|(d, _)| done.contains(d)) {
                    done.insert(name.clone());
                }
            }
            assert!(done.len() > before, "{file}: depends_on cycle");
        }
    }
}

#[test]
fn build_contexts_env_files_and_bind_mounts_exist() {
    for file in COMPOSE_FILES {
        let doc = load(file);
        for (name, svc) in services(&doc) {
            match &svc["build"] {
                Json::String(ctx) => assert!(root().join(ctx).is_dir(), "{file}: {name}: {ctx}"),
                Json::Object(b) => {
                    let ctx = b.get("context").and_then(Json::as_str).unwrap_or(".");
                    let ctx = root().join(ctx);
                    assert!(
                        ctx.is_dir(),
                        "{file}: {name}: build context {}",
                        ctx.display()
                    );
                    let df = b
                        .get("dockerfile")
                        .and_then(Json::as_str)
                        .unwrap_or("Dockerfile");
                    assert!(ctx.join(df).is_file(), "{file}: {name}: dockerfile {df}");
                }
                _ => {}
            }
            let env_files: Vec<&str> = match &svc["env_file"] {
                Json::String(s) => vec![s.as_str()],
                Json::Array(a) => a.iter().filter_map(Json::as_str).collect(),
                _ => vec![],
            };
            for f in env_files {
                assert!(root().join(f).is_file(), "{file}: {name}: env_file {f}");
            }
            for v in svc["volumes"].as_array().into_iter().flatten() {
                let source = match v {
                    Json::String(s) => s.split(':').next().unwrap().to_owned(),
                    Json::Object(m) => m
                        .get("source")
                        .and_then(Json::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    _ => continue,
                };
                if source.starts_with('.') || source.starts_with('/') {
                    assert!(
                        root().join(&source).exists(),
                        "{file}: {name}: mount {source}"
                    );
                } else {
                    let named = doc["volumes"].as_object();
                    assert!(
                        named.is_some_and(|m| m.contains_key(&source)),
                        "{file}: {name}: named volume {source} is not declared"
                    );
                }
            }
        }
    }
}

#[test]
fn every_api_image_service_gets_a_complete_config() {
    for file in COMPOSE_FILES {
        let doc = load(file);
        let api_services: Vec<&String> = services(&doc)
            .iter()
            .filter(|(_, s)| is_api_image(s))
            .map(|(n, _)| n)
            .collect();
        assert!(api_services.len() >= 4, "{file}: {api_services:?}");
        for name in api_services {
            let svc = &services(&doc)[name];
            let env = environment(svc);
            let settings = api::config::Settings::from_env_map(&env)
                .unwrap_or_else(|e| panic!("{file}: {name}: {e}"));
            assert!(
                !settings.database.is_embedded_default,
                "{file}: {name}: no DATABASE_URL/DATABASE_HOST: it would use SQLite in the container"
            );
            assert!(settings.redis_url.is_some(), "{file}: {name}: REDIS_URL");
            // The database (and Redis) the config names are services of the file
            // that this one waits for.
            let deps: BTreeMap<String, String> = depends_on(svc).into_iter().collect();
            let host = env.get("DATABASE_HOST").cloned().unwrap_or_default();
            if !host.is_empty() {
                assert_eq!(
                    deps.get(&host).map(String::as_str),
                    Some("service_healthy"),
                    "{file}: {name}"
                );
            }
            if svc["command"][0].as_str() == Some("serve") {
                let port = env.get("PORT").map(String::as_str).unwrap_or("5000");
                assert!(
                    !published_ports(svc).is_empty(),
                    "{file}: {name} publishes no port"
                );
                let s = svc["ports"][0].as_str().unwrap();
                assert!(
                    s.ends_with(&format!(":{port}")),
                    "{file}: {name}: {s} vs PORT {port}"
                );
            }
        }
    }
}

#[test]
fn published_host_ports_do_not_clash() {
    for file in COMPOSE_FILES {
        let doc = load(file);
        let mut seen: BTreeMap<(u16, String), String> = BTreeMap::new();
        for (name, svc) in services(&doc) {
            for key in published_ports(svc) {
                if let Some(other) = seen.insert(key.clone(), name.clone()) {
                    panic!("{file}: {name} and {other} both publish {key:?}");
                }
            }
        }
    }
}

#[test]
fn api_services_log_to_the_published_fluentd_port() {
    let doc = load("docker-compose-logging.yml");
    let svcs = services(&doc);
    let fluentd = &svcs["fluentd"];
    let ports = published_ports(fluentd);
    assert!(ports.contains(&(24224, "tcp".to_owned())), "{ports:?}");
    assert!(ports.contains(&(24224, "udp".to_owned())), "{ports:?}");
    // logship's /metrics and /healthz (the prometheus source of fluentd.conf).
    assert!(ports.contains(&(24231, "tcp".to_owned())), "{ports:?}");
    let mut n = 0;
    for (name, svc) in svcs.iter().filter(|(_, s)| is_api_image(s)) {
        n += 1;
        let logging = &svc["logging"];
        assert_eq!(logging["driver"], "fluentd", "{name}");
        let opts = &logging["options"];
        let addr = opts["fluentd-address"].as_str().unwrap();
        let (host, port) = addr.rsplit_once(':').unwrap();
        // The daemon connects from the host: a host address, not the service name.
        assert!(matches!(host, "localhost" | "127.0.0.1"), "{name}: {addr}");
        let port: u16 = port.parse().unwrap();
        assert!(
            ports.contains(&(port, "tcp".to_owned())),
            "{name}: {addr} vs {ports:?}"
        );
        assert_eq!(opts["fluentd-async"], "true", "{name}");
        assert_eq!(opts["tag"], "docker.{{.Name}}", "{name}");
        // They must not wait for the logging stack (fluentd-async buffers instead).
        assert!(
            depends_on(svc).iter().all(|(d, _)| d != "fluentd"),
            "{name} waits for fluentd"
        );
    }
    assert!(n >= 4);
    // The tag matches the <match docker.**> of the config the image runs.
    let conf = std::fs::read_to_string(root().join("fluentd/fluentd.conf")).unwrap();
    assert!(conf.contains("<match docker.**>"));
    // The logging stack's own start order.
    let deps: BTreeMap<String, String> = depends_on(fluentd).into_iter().collect();
    assert_eq!(deps["elasticsearch"], "service_healthy");
    let deps: BTreeMap<String, String> = depends_on(&svcs["kibana-setup"]).into_iter().collect();
    assert_eq!(deps["kibana"], "service_healthy");
    let env = environment(fluentd);
    assert_eq!(env["ELASTICSEARCH_HOST"], "elasticsearch");
    assert_eq!(env["ELASTICSEARCH_PORT"], "9200");
}
