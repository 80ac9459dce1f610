//! The embedded Ruby of `"#{...}"` strings: the subset that real configs use, evaluated with
//! Ruby's semantics, without a Ruby interpreter.
//!
//! Fluentd evaluates the code between `#{` and `}` of a double-quoted value as Ruby and
//! interpolates the result. Configs use a handful of forms, chained with `||`:
//!
//! | form | value |
//! |---|---|
//! | `ENV['X']`, `ENV["X"]` | the variable, or `nil` when it is not set |
//! | `ENV.fetch('X', 'd')` | the variable, or `d` when it is not set |
//! | `ENV.fetch('X')` | the variable; an error when it is not set (Ruby's `KeyError`) |
//! | `'text'`, `"text"`, `42` | the literal |
//! | `Socket.gethostname`, `hostname` | this machine's host name |
//! | `use_default` | the parameter takes its declared default, as if it were not written |
//! | `use_nil` | the parameter is unset (an error for one that always has a value) |
//! | `A \|\| B \|\| ...` | the first of A, B, ... that is not `nil` |
//!
//! Ruby's truthiness decides `||`: only `nil` (and `false`) fall through, so a variable set to
//! the empty string is used as the empty string — `ENV['X'] || 'd'` gives `d` only when `X` is
//! not set at all. `nil` interpolates as the empty string (`"#{ENV['X']}"` with `X` unset is
//! `""`, as in Fluentd). `use_default` and `use_nil` stop the evaluation where they are reached
//! (in Fluentd they raise), and they apply to the whole value even when the string has other
//! text around the `#{...}`; `use_nil` wins over `use_default`. Anything else is an error
//! naming these forms.

/// What one `#{...}` evaluates to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Embedded {
    /// Text to interpolate (`nil` interpolates as `""`).
    Text(String),
    /// `use_default`: the parameter takes its declared default.
    UseDefault,
    /// `use_nil`: the parameter is unset.
    UseNil,
}

/// The forms this module evaluates, for error messages.
pub const SUPPORTED: &str = "ENV['X'], ENV.fetch('X', 'default'), 'literal', use_default, use_nil, Socket.gethostname and hostname, joined with ||";

/// One operand of a `||` chain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Env(String),
    Fetch(String, Option<String>),
    Literal(String),
    Hostname,
    UseDefault,
    UseNil,
}

/// Evaluates `code` (the text between `#{` and `}`) with `env` for `ENV`.
pub fn eval(code: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Embedded, String> {
    let terms = parse(code).ok_or_else(|| {
        format!("unsupported embedded Ruby code #{{{code}}}: logship evaluates only {SUPPORTED}")
    })?;
    for term in terms {
        let value = match term {
            Term::Env(name) => env(&name),
            Term::Fetch(name, default) => match (env(&name), default) {
                (Some(v), _) => Some(v),
                (None, Some(d)) => Some(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (used as ENV.fetch('{name}') without a default)"
                    ))
                }
            },
            Term::Literal(s) => Some(s),
            Term::Hostname => Some(gethostname::gethostname().to_string_lossy().into_owned()),
            Term::UseDefault => return Ok(Embedded::UseDefault),
            Term::UseNil => return Ok(Embedded::UseNil),
        };
        if let Some(v) = value {
            return Ok(Embedded::Text(v));
        }
    }
    // Every operand was nil: Ruby interpolates nil as the empty string.
    Ok(Embedded::Text(String::new()))
}

/// `code` as a `||` chain of terms; `None` when it is anything else. Empty code is an empty
/// chain (Ruby's `"#{}"` is `""`).
fn parse(code: &str) -> Option<Vec<Term>> {
    let mut lexer = Lexer {
        rest: code.trim_start(),
    };
    let mut terms = Vec::new();
    if lexer.rest.is_empty() {
        return Some(terms);
    }
    loop {
        terms.push(lexer.term()?);
        if lexer.rest.is_empty() {
            return Some(terms);
        }
        lexer.eat("||")?;
    }
}

/// A cursor over the code; every method skips the spaces after what it consumed.
struct Lexer<'a> {
    rest: &'a str,
}

impl Lexer<'_> {
    fn advance(&mut self, n: usize) {
        self.rest = self.rest[n..].trim_start();
    }

    fn eat(&mut self, token: &str) -> Option<()> {
        self.rest
            .starts_with(token)
            .then(|| self.advance(token.len()))
    }

    /// A word (`use_nil`, `ENV`, `Socket`), not followed by more word characters.
    fn eat_word(&mut self, word: &str) -> Option<()> {
        let after = self.rest.strip_prefix(word)?;
        if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        self.advance(word.len());
        Some(())
    }

    fn term(&mut self) -> Option<Term> {
        if self.eat_word("ENV").is_some() {
            if self.eat("[").is_some() {
                let name = self.string()?;
                self.eat("]")?;
                return Some(Term::Env(name));
            }
            self.eat(".")?;
            self.eat_word("fetch")?;
            self.eat("(")?;
            let name = self.string()?;
            let default = match self.eat(",") {
                Some(()) => Some(self.literal()?),
                None => None,
            };
            self.eat(")")?;
            return Some(Term::Fetch(name, default));
        }
        if self.eat_word("Socket").is_some() {
            self.eat(".")?;
            self.eat_word("gethostname")?;
            return Some(Term::Hostname);
        }
        for (word, term) in [
            ("hostname", Term::Hostname),
            ("use_default", Term::UseDefault),
            ("use_nil", Term::UseNil),
        ] {
            if self.eat_word(word).is_some() {
                return Some(term);
            }
        }
        self.literal().map(Term::Literal)
    }

    /// A string or an integer literal, as its text.
    fn literal(&mut self) -> Option<String> {
        let digits = self
            .rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'_')
            .count();
        if digits > 0 {
            let n = self.rest[..digits].replace('_', "");
            self.advance(digits);
            return Some(n);
        }
        self.string()
    }

    /// A single- or double-quoted Ruby string without interpolation. Single quotes know only
    /// `\'` and `\\`; double quotes also `\n`, `\t` and an escaped quote or backslash.
    fn string(&mut self) -> Option<String> {
        let quote = self
            .rest
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')?;
        let mut out = String::new();
        let mut chars = self.rest.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.advance(i + 1);
                    return Some(out);
                }
                '\\' => {
                    let (_, e) = chars.next()?;
                    match (quote, e) {
                        (_, '\\') => out.push('\\'),
                        (q, e) if e == q => out.push(e),
                        ('"', 'n') => out.push('\n'),
                        ('"', 't') => out.push('\t'),
                        ('\'', e) => {
                            out.push('\\');
                            out.push(e);
                        }
                        _ => return None,
                    }
                }
                // Interpolation inside the literal is beyond the subset.
                '#' if quote == '"' && self.rest[i + 1..].starts_with('{') => return None,
                c => out.push(c),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("from-env".into()),
            "EMPTY" => Some(String::new()),
            "OTHER" => Some("other".into()),
            _ => None,
        }
    }

    fn text(code: &str) -> String {
        match eval(code, &env) {
            Ok(Embedded::Text(t)) => t,
            other => panic!("#{{{code}}}: {other:?}"),
        }
    }

    #[test]
    fn env_lookups() {
        assert_eq!(text("ENV['SET']"), "from-env");
        assert_eq!(text("ENV[\"SET\"]"), "from-env");
        assert_eq!(text(" ENV[ 'SET' ] "), "from-env");
        // nil interpolates as "".
        assert_eq!(text("ENV['UNSET']"), "");
        assert_eq!(text("ENV['EMPTY']"), "");
    }

    #[test]
    fn fetch_with_and_without_default() {
        assert_eq!(text("ENV.fetch('SET', 'd')"), "from-env");
        assert_eq!(text("ENV.fetch('UNSET', 'd')"), "d");
        assert_eq!(text("ENV.fetch(\"UNSET\",\"d\")"), "d");
        assert_eq!(text("ENV.fetch('UNSET', 24224)"), "24224");
        assert_eq!(text("ENV.fetch('SET')"), "from-env");
        assert_eq!(
            eval("ENV.fetch('UNSET')", &env).unwrap_err(),
            "environment variable UNSET is not set (used as ENV.fetch('UNSET') without a default)"
        );
    }

    #[test]
    fn or_chains_follow_ruby_truthiness() {
        assert_eq!(text("ENV['SET'] || 'd'"), "from-env");
        assert_eq!(text("ENV['UNSET'] || 'd'"), "d");
        // An empty string is truthy in Ruby: the default is not taken.
        assert_eq!(text("ENV['EMPTY'] || 'd'"), "");
        assert_eq!(text("ENV['UNSET'] || ENV['OTHER'] || 'd'"), "other");
        assert_eq!(text("ENV['UNSET'] || ENV['NOPE'] || 'd'"), "d");
        assert_eq!(text("ENV['UNSET'] || ENV['NOPE']"), "");
        assert_eq!(text("ENV['UNSET'] || 9200"), "9200");
        assert_eq!(text("ENV['UNSET'] || \"a \\\"q\\\"\""), "a \"q\"");
    }

    #[test]
    fn use_default_and_use_nil_apply_only_when_reached() {
        assert_eq!(eval("use_default", &env), Ok(Embedded::UseDefault));
        assert_eq!(eval("use_nil", &env), Ok(Embedded::UseNil));
        assert_eq!(
            eval("ENV['UNSET'] || use_default", &env),
            Ok(Embedded::UseDefault)
        );
        assert_eq!(eval("ENV['UNSET'] || use_nil", &env), Ok(Embedded::UseNil));
        assert_eq!(text("ENV['SET'] || use_default"), "from-env");
        assert_eq!(text("ENV['EMPTY'] || use_nil"), "");
        // Evaluation stops at use_default, as Ruby's raise does.
        assert_eq!(eval("use_default || 'x'", &env), Ok(Embedded::UseDefault));
    }

    #[test]
    fn hostname_forms() {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        assert!(!host.is_empty());
        assert_eq!(text("Socket.gethostname"), host);
        assert_eq!(text("hostname"), host);
        assert_eq!(text(""), "");
    }

    #[test]
    fn anything_else_names_the_supported_forms() {
        for code in [
            "`ls`",
            "File.read('/etc/passwd')",
            "ENV['A'] + 'x'",
            "ENV['A'] && 'x'",
            "ENV['A'] ||",
            "ENV.fetch('A', ENV['B'])",
            "ENV[A]",
            "hostnamex",
            "use_default()",
            "\"#{1}\"",
            "'unterminated",
            "worker_id",
        ] {
            let e = eval(code, &env).unwrap_err();
            assert!(
                e.starts_with(&format!("unsupported embedded Ruby code #{{{code}}}"))
                    && e.ends_with(SUPPORTED),
                "{code}: {e}"
            );
        }
    }
}
