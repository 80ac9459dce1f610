//! Bakes the git commit into the binary (`api --version`).
//!
//! Order of preference: `git rev-parse --short HEAD`, then the `GIT_SHA`
//! environment variable (for builds outside a checkout, e.g. `docker build`),
//! then the literal `unknown`. This script never fails the build.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=GIT_SHA");
    for head in ["../.git/HEAD", ".git/HEAD"] {
        if Path::new(head).exists() {
            println!("cargo:rerun-if-changed={head}");
        }
    }
    let from_git = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let sha = from_git
        .or_else(|| {
            std::env::var("GIT_SHA")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=API_GIT_SHA={sha}");
}
