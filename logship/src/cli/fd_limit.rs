//! The open-file limit (`RLIMIT_NOFILE`): `logship run` raises its soft limit to the hard
//! limit at start, because every Forward connection is a file descriptor and the common soft
//! default (1,024) would cap a fleet at about a thousand clients. Both values are logged; the
//! default connection cap of the Forward inputs follows from the raised limit
//! ([`crate::forward::admission::default_max_connections`]).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The limits before and after [`raise_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimits {
    /// Soft limit found at start (`None`: unlimited).
    pub soft_before: Option<u64>,
    /// Soft limit now.
    pub soft: Option<u64>,
    /// Hard limit (`None`: unlimited).
    pub hard: Option<u64>,
}

/// Raises the soft open-file limit to the hard limit. An error leaves the limit as it was.
pub fn raise_nofile() -> Result<NofileLimits, std::io::Error> {
    let before = getrlimit(Resource::Nofile);
    if before.current == before.maximum {
        return Ok(NofileLimits {
            soft_before: before.current,
            soft: before.current,
            hard: before.maximum,
        });
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        },
    )?;
    let after = getrlimit(Resource::Nofile);
    Ok(NofileLimits {
        soft_before: before.current,
        soft: after.current,
        hard: after.maximum,
    })
}

/// Raises the limit and logs the outcome (INFO, or WARN when it could not be raised).
pub fn raise_and_log() {
    let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |n| n.to_string());
    match raise_nofile() {
        Ok(l) => tracing::info!(
            soft_before = %show(l.soft_before),
            soft = %show(l.soft),
            hard = %show(l.hard),
            "open-file limit (RLIMIT_NOFILE) raised to the hard limit"
        ),
        Err(e) => {
            let now = getrlimit(Resource::Nofile);
            tracing::warn!(
                error = %e,
                soft = %show(now.current),
                hard = %show(now.maximum),
                "cannot raise the open-file limit (RLIMIT_NOFILE); the connection cap follows the soft limit"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        // Lower the soft limit first (always allowed), so the raise has something to do.
        let start = getrlimit(Resource::Nofile);
        let hard = start
            .maximum
            .expect("a finite hard limit on the test machines");
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard / 2),
                maximum: Some(hard),
            },
        )
        .unwrap();
        let l = raise_nofile().unwrap();
        assert_eq!(l.soft_before, Some(hard / 2));
        assert_eq!((l.soft, l.hard), (Some(hard), Some(hard)));
        assert_eq!(getrlimit(Resource::Nofile).current, Some(hard));
    }
}
