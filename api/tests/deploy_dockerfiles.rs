//! Static rules for `api/Dockerfile` and `fluentd/Dockerfile` (no Docker engine needed):
//! multi-stage build whose runtime stage copies the binary from the builder, runs as a
//! non-root `USER`, `EXPOSE`s the service ports, stops on `SIGTERM`, has a `HEALTHCHECK`
//! whose program is in the runtime image, carries OCI labels with version and revision from
//! build args, and builds with exactly `cargo build --release --locked --bin <name>` — the
//! command `scripts/build-release.sh` runs. Every file the Dockerfiles `COPY` from the
//! build context (the repository root) exists.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[derive(Debug)]
struct Instr {
    op: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    from: String,
    name: Option<String>,
    instrs: Vec<Instr>,
}

impl Stage {
    fn all(&self, op: &str) -> Vec<&str> {
        self.instrs
            .iter()
            .filter(|i| i.op == op)
            .map(|i| i.args.as_str())
            .collect()
    }
    fn last(&self, op: &str) -> Option<&str> {
        self.all(op).last().copied()
    }
}

/// Instructions (continuation lines joined, comments dropped), grouped by stage.
fn parse(file: &str) -> (Vec<Instr>, Vec<Stage>) {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let mut logical = vec![];
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
        } else {
            cur.push_str(t);
            logical.push(std::mem::take(&mut cur));
        }
    }
    let mut global = vec![];
    let mut stages: Vec<Stage> = vec![];
    for l in logical {
        let (op, args) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let instr = Instr {
            op: op.to_uppercase(),
            args: args.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        if instr.op == "FROM" {
            let words: Vec<&str> = instr.args.split(' ').collect();
            let name = match words.as_slice() {
                [_, as_, n] if as_.eq_ignore_ascii_case("as") => Some(n.to_string()),
                _ => None,
            };
            stages.push(Stage {
                from: words[0].to_owned(),
                name,
                instrs: vec![],
            });
        } else if let Some(s) = stages.last_mut() {
            s.instrs.push(instr);
        } else {
            global.push(instr);
        }
    }
    (global, stages)
}

/// The words of an exec-form (`["a", "b"]`) or shell-form argument list.
fn words(args: &str) -> Vec<String> {
    if args.starts_with('[') {
        serde_json::from_str(args).unwrap()
    } else {
        args.split(' ').map(str::to_owned).collect()
    }
}

struct Image {
    dockerfile: &'static str,
    bin: &'static str,
    expose: &'static str,
}

const IMAGES: &[Image] = &[
    Image {
        dockerfile: "api/Dockerfile",
        bin: "api",
        expose: "5000",
    },
    Image {
        dockerfile: "fluentd/Dockerfile",
        bin: "logship",
        expose: "24224/tcp 24224/udp",
    },
];

const BUILD_TEMPLATE: &str = "cargo build --release --locked --bin <name>";

fn check(img: &Image) {
    let file = img.dockerfile;
    let (global, stages) = parse(file);
    assert!(
        global.iter().all(|i| i.op == "ARG"),
        "{file}: only ARGs before the first FROM"
    );
    assert!(stages.len() >= 2, "{file}: multi-stage build");
    let builder = stages
        .iter()
        .find(|s| s.name.as_deref() == Some("builder"))
        .expect("builder stage");
    let runtime = stages.last().unwrap();
    assert_eq!(
        runtime.name.as_deref(),
        Some("runtime"),
        "{file}: last stage is `runtime`"
    );
    assert!(
        !runtime.from.contains("rust:"),
        "{file}: the runtime image has no toolchain"
    );

    // The exact build command, once, in the builder stage.
    let expected = BUILD_TEMPLATE.replace("<name>", img.bin);
    let builds: Vec<&str> = stages
        .iter()
        .flat_map(|s| s.all("RUN"))
        .flat_map(|r| r.split("&&"))
        .map(str::trim)
        .filter_map(|c| c.find("cargo ").map(|i| &c[i..]))
        .collect();
    assert_eq!(builds, vec![expected.as_str()], "{file}");
    assert!(builder.all("RUN").iter().any(|r| r.contains(&expected)));

    // The binary reaches the runtime image from the builder.
    let target = format!("/usr/local/bin/{}", img.bin);
    assert!(
        runtime
            .all("COPY")
            .iter()
            .any(|c| c.starts_with("--from=builder ") && c.ends_with(&target)),
        "{file}: runtime copies {target} from the builder"
    );
    let programs_in_image = [img.bin, "sh", "/bin/sh"];

    // Non-root user.
    let user = runtime.last("USER").expect("USER in the runtime stage");
    let uid = user.split(':').next().unwrap();
    assert!(!matches!(uid, "root" | "0"), "{file}: USER {user}");
    assert!(
        uid.parse::<u32>().is_ok_and(|n| n >= 1000),
        "{file}: numeric non-system uid, got {user}"
    );
    let useradd = runtime.all("RUN").join(" ");
    assert!(
        useradd.contains(&format!("--uid {uid}")),
        "{file}: uid {uid} is created by useradd"
    );

    assert_eq!(runtime.all("EXPOSE"), vec![img.expose], "{file}");
    assert_eq!(runtime.last("STOPSIGNAL"), Some("SIGTERM"), "{file}");

    // HEALTHCHECK [options] CMD <program in the image>.
    let hc = runtime.last("HEALTHCHECK").expect("HEALTHCHECK");
    let cmd = &hc[hc.find("CMD ").expect("HEALTHCHECK ... CMD") + 4..];
    let w = words(cmd);
    assert!(
        programs_in_image.contains(&w[0].as_str()),
        "{file}: healthcheck runs {}",
        w[0]
    );
    if w[0].ends_with("sh") {
        let script = &w[2];
        let prog = script.split(' ').next().unwrap();
        assert_eq!(prog, img.bin, "{file}: healthcheck script {script}");
    }

    // OCI labels, version and revision from build args declared in the runtime stage.
    let args = runtime.all("ARG").join(" ");
    assert!(
        args.contains("VERSION") && args.contains("REVISION"),
        "{file}: ARG VERSION/REVISION"
    );
    let labels = runtime.all("LABEL").join(" ");
    for want in [
        r#"org.opencontainers.image.version="${VERSION}""#,
        r#"org.opencontainers.image.revision="${REVISION}""#,
        "org.opencontainers.image.title=",
        "org.opencontainers.image.licenses=",
    ] {
        assert!(labels.contains(want), "{file}: label {want}");
    }

    // ENTRYPOINT is the binary.
    assert_eq!(
        words(runtime.last("ENTRYPOINT").unwrap())[0],
        img.bin,
        "{file}"
    );

    // Every COPY source from the build context exists.
    for stage in &stages {
        for c in stage.all("COPY") {
            if c.starts_with("--from=") {
                continue;
            }
            let w: Vec<&str> = c.split(' ').filter(|w| !w.starts_with("--")).collect();
            for src in &w[..w.len() - 1] {
                assert!(
                    root().join(src).exists(),
                    "{file}: COPY source {src} is missing"
                );
            }
        }
    }
}

#[test]
fn api_dockerfile_follows_the_rules() {
    check(&IMAGES[0]);
}

#[test]
fn fluentd_dockerfile_follows_the_rules() {
    check(&IMAGES[1]);
    // The config it runs by default is one it ships.
    let (_, stages) = parse("fluentd/Dockerfile");
    let runtime = stages.last().unwrap();
    let cmd = words(runtime.last("CMD").unwrap());
    let conf = cmd.last().unwrap();
    let name = conf.strip_prefix("/fluentd/etc/").expect(conf);
    assert!(runtime
        .all("COPY")
        .iter()
        .any(|c| c.contains(&format!("fluentd/{name}"))));
    assert!(root().join("fluentd").join(name).is_file());
}

#[test]
fn build_release_script_runs_the_dockerfile_build_command() {
    let script = std::fs::read_to_string(root().join("scripts/build-release.sh")).unwrap();
    let cmds: Vec<&str> = script
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo "))
        .collect();
    assert_eq!(
        cmds,
        vec![BUILD_TEMPLATE.replace("<name>", "\"$bin\"").as_str()]
    );
    let defaults: Vec<&str> = IMAGES.iter().map(|i| i.bin).collect();
    assert!(
        script.contains(&format!("set -- {}", defaults.join(" "))),
        "default binaries"
    );
}
