//! The configs shipped in the logship image (`fluentd/*.conf`) pass `logship check-config`.
//! `fluentd.conf` reads ELASTICSEARCH_HOST/PORT and FLUENTD_TEMPLATE_FILE with defaults, so it
//! is checked both without them and with them set (docker-compose-logging.yml sets the first two).

use std::path::{Path, PathBuf};
use std::process::Command;

fn conf(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("fluentd")
        .join(name)
}

fn check_config(path: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logship"));
    cmd.arg("check-config").arg("--config").arg(path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_shipped_config_passes_check_config() {
    let dir = conf("");
    let mut confs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    confs.sort();
    assert!(confs.contains(&conf("demo.conf")), "{confs:?}");
    for path in &confs {
        assert_ok(&check_config(path, &[]), &path.display().to_string());
    }
}

#[test]
fn fluentd_conf_passes_with_the_compose_environment() {
    // Shipped in the image (fluentd/Dockerfile): its absence is a failure, not a skip.
    let path = conf("fluentd.conf");
    assert!(path.is_file(), "{} is missing", path.display());
    let out = check_config(
        &path,
        &[
            ("ELASTICSEARCH_HOST", "es-from-env"),
            ("ELASTICSEARCH_PORT", "9201"),
        ],
    );
    assert_ok(&out, "fluentd.conf");
    let printed = String::from_utf8_lossy(&out.stdout);
    // The output follows the environment, and the source listens where compose publishes.
    assert!(printed.contains("hosts=es-from-env:9201"), "{printed}");
    assert!(printed.contains("forward 0.0.0.0:24224"), "{printed}");
    // The monitoring endpoint, on the port compose publishes (docs/metrics.md).
    assert!(
        printed.contains("prometheus 0.0.0.0:24231 (GET /metrics, /healthz)"),
        "{printed}"
    );
}
