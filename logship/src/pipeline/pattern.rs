//! Fluentd tag patterns, as `<match>`/`<filter>` arguments use them.
//!
//! - `*` matches one tag part (any characters but `.`): `a.*` matches `a.b`, not `a` or `a.b.c`;
//! - `**` matches zero or more parts: `a.**` matches `a`, `a.b`, `a.b.c` (not `ab`); `**.x`
//!   matches `x` and `a.b.x`;
//! - `{a,b}` matches either alternative (alternatives may contain patterns);
//! - several patterns separated by spaces match when any of them does;
//! - `\` escapes the next character. Regex patterns (`/re/`) are not supported.
//!
//! This follows Fluentd's `MatchPattern` (lib/fluent/match.rb) translation to a regex,
//! evaluated by a small backtracking matcher.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Lit(u8),
    /// `[^.]*`
    Star,
    /// `.*`
    Any,
    /// `(?:.*\.|\A)` — what `**.` becomes.
    AnyDotOrStart,
    /// `(?![^.])` — after `x.` when `**` follows: the tag ends here or a `.` follows.
    PartEnd,
    Alt(Vec<Vec<Node>>),
}

/// A compiled pattern (possibly several, space-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPattern {
    source: String,
    alternatives: Vec<Vec<Node>>,
}

impl fmt::Display for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl TagPattern {
    /// Compiles `src` (one or more space-separated patterns).
    pub fn parse(src: &str) -> Result<TagPattern, String> {
        let mut alternatives = Vec::new();
        for p in src.split_ascii_whitespace() {
            alternatives.push(compile(p)?);
        }
        if alternatives.is_empty() {
            return Err("empty pattern".into());
        }
        Ok(TagPattern {
            source: src.split_ascii_whitespace().collect::<Vec<_>>().join(" "),
            alternatives,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `tag` matches.
    pub fn matches(&self, tag: &str) -> bool {
        let t = tag.as_bytes();
        self.alternatives
            .iter()
            .any(|nodes| m(nodes, t, 0, &mut |p| p == t.len()))
    }
}

fn compile(pat: &str) -> Result<Vec<Node>, String> {
    if pat.starts_with('/') {
        return Err("regular-expression patterns (/.../) are not supported".into());
    }
    let b = pat.as_bytes();
    // A stack of alternative groups: each group is a list of branches.
    let mut stack: Vec<Vec<Vec<Node>>> = Vec::new();
    let mut cur: Vec<Node> = Vec::new();
    let mut dot = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            if dot {
                cur.push(Node::Lit(b'.'));
                dot = false;
            }
            let n = *b.get(i + 1).ok_or("pattern ends with a lone backslash")?;
            cur.push(Node::Lit(n));
            i += 2;
            continue;
        }
        if c == b'*' && b.get(i + 1) == Some(&b'*') {
            if dot {
                cur.push(Node::PartEnd);
                dot = false;
            }
            if b.get(i + 2) == Some(&b'.') {
                cur.push(Node::AnyDotOrStart);
                i += 3;
            } else {
                cur.push(Node::Any);
                i += 2;
            }
            continue;
        }
        if dot {
            cur.push(Node::Lit(b'.'));
            dot = false;
        }
        match c {
            b'.' => dot = true,
            b'*' => cur.push(Node::Star),
            b'{' => {
                stack.push(Vec::new());
                stack
                    .last_mut()
                    .expect("just pushed")
                    .push(std::mem::take(&mut cur));
                // The saved prefix is stored as the group's first element; branches follow.
            }
            b',' if !stack.is_empty() => {
                stack
                    .last_mut()
                    .expect("non-empty")
                    .push(std::mem::take(&mut cur));
            }
            b'}' if !stack.is_empty() => {
                let mut group = stack.pop().expect("non-empty");
                group.push(std::mem::take(&mut cur));
                let mut prefix = group.remove(0);
                prefix.push(Node::Alt(group));
                cur = prefix;
            }
            other => cur.push(Node::Lit(other)),
        }
        i += 1;
    }
    if dot {
        cur.push(Node::Lit(b'.'));
    }
    if !stack.is_empty() {
        return Err("unclosed '{' in pattern".into());
    }
    Ok(cur)
}

/// Matches `nodes` against `t` from `pos`; `k` is the continuation (what must match after).
fn m(nodes: &[Node], t: &[u8], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    let Some((first, rest)) = nodes.split_first() else {
        return k(pos);
    };
    match first {
        Node::Lit(c) => t.get(pos) == Some(c) && m(rest, t, pos + 1, k),
        Node::Star => {
            let mut end = pos;
            while end < t.len() && t[end] != b'.' {
                end += 1;
            }
            (pos..=end).rev().any(|p| m(rest, t, p, k))
        }
        Node::Any => (pos..=t.len()).rev().any(|p| m(rest, t, p, k)),
        Node::AnyDotOrStart => {
            if pos == 0 && m(rest, t, 0, k) {
                return true;
            }
            (pos..t.len())
                .rev()
                .any(|p| t[p] == b'.' && m(rest, t, p + 1, k))
        }
        Node::PartEnd => (pos == t.len() || t[pos] == b'.') && m(rest, t, pos, k),
        Node::Alt(branches) => branches
            .iter()
            .any(|br| m(br, t, pos, &mut |p| m(rest, t, p, k))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("a", "a", true),
            ("a", "b", false),
            ("a", "a.b", false),
            ("a.*", "a.b", true),
            ("a.*", "a", false),
            ("a.*", "a.b.c", false),
            ("a.**", "a", true),
            ("a.**", "a.b", true),
            ("a.**", "a.b.c", true),
            ("a.**", "ab", false),
            ("**", "", true),
            ("**", "a.b.c", true),
            ("**.c", "c", true),
            ("**.c", "a.b.c", true),
            ("**.c", "a.bc", false),
            ("a.{b,c}", "a.b", true),
            ("a.{b,c}", "a.c", true),
            ("a.{b,c}", "a.d", false),
            ("a.{b,c.**}", "a.c.d.e", true),
            ("{a,b}.*", "b.x", true),
            ("a b", "b", true),
            ("a.* b.**", "b.c.d", true),
            ("a.* b.**", "a.c.d", false),
            ("*.api", "docker.api", true),
            ("docker.*", "docker.api", true),
            ("a.b*", "a.bcd", true),
            ("a.b*", "a.b.d", false),
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a..c", true),
            ("a.**.c", "a.c", true),
            ("a.**.c", "a.x.y.c", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(
                TagPattern::parse(p).unwrap().matches(t),
                *want,
                "pattern {p:?} tag {t:?}"
            );
        }
        assert!(TagPattern::parse("a.{b").is_err());
        assert!(TagPattern::parse("/a.*/").is_err());
    }
}
