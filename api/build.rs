//! Bakes the git commit into the binary (`api --version`).
//!
//! Order of preference: `git rev-parse --short HEAD`, then the `GIT_SHA`
//! environment variable (for builds outside a checkout, e.g. `docker build`),
//! then the literal `unknown`. This script never fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=GIT_SHA");
    // Rebuild when HEAD moves: watch HEAD itself (branch switches) and the
    // branch ref it points at (new commits), plus packed-refs. In a linked
    // worktree HEAD is in the worktree's git dir, but refs and packed-refs
    // are in the common dir (the main checkout's .git).
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let git_dir = Path::new(&git_dir);
        let common = git(&["rev-parse", "--git-common-dir"])
            .map(|d| absolute(Path::new(&d)))
            .unwrap_or_else(|| git_dir.to_path_buf());
        let mut watch = vec![git_dir.join("HEAD"), common.join("packed-refs")];
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(common.join(r));
        }
        for p in watch.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    let sha = git(&["rev-parse", "--short", "HEAD"])
        .or_else(|| {
            std::env::var("GIT_SHA")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=API_GIT_SHA={sha}");
}

/// `p` as an absolute path (git prints the common dir relative to the
/// current directory, which for a build script is the package directory).
fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
    }
}

/// Run git; `None` if git is missing, fails, or prints nothing.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}
