//! The generic layer: Fluentd's config syntax parsed into a tree of [`Element`]s.
//!
//! Supported syntax (Fluentd v1):
//! - sections `<name arg>` … `</name>`, nested to any depth;
//! - parameters `key value`, one per line; `@type`, `@id`, `@label`, `@log_level` are ordinary
//!   parameters whose key starts with `@`;
//! - values: unquoted (the rest of the line; a `#` preceded by whitespace starts a comment, a
//!   `#` inside a word is literal), `"double quoted"` (escapes `\" \\ \n \t \r \f \b \e \s \0
//!   \#`, may span lines, `#{...}` evaluated by the embedded-Ruby subset of [`super::ruby`] —
//!   `ENV['X'] || 'default'`, `use_default`, `use_nil`, ... — any other Ruby is an error),
//!   `'single quoted'` (literal; only `\'` and `\\` are escapes), and values starting with `[`
//!   or `{` that continue over several lines until the brackets balance (as Fluentd allows for
//!   array and hash values);
//! - `# comments` on their own line or after a section tag or value;
//! - `@include PATH`: relative to the including file's directory; a glob (`conf.d/*.conf`)
//!   includes every match in sorted order; a plain path must exist. Includes may appear at
//!   top level or inside a section, and their elements are spliced in place.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ruby::{self, Embedded};

/// Where something was written: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A configuration error, with its location when known. Displays as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub loc: Option<Loc>,
    pub message: String,
}

impl ConfigError {
    pub fn at(loc: &Loc, message: impl Into<String>) -> Self {
        Self {
            loc: Some(loc.clone()),
            message: message.into(),
        }
    }
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            loc: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.loc {
            Some(l) => write!(f, "{l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// One `key value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub key: String,
    /// The value after unquoting and interpolation (empty unless `kind` is `Given`).
    pub value: String,
    pub loc: Loc,
    pub kind: ValueKind,
}

/// Whether a line gives a value, or asks (with embedded Ruby's `use_default` / `use_nil`) for
/// the parameter's default or for no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueKind {
    #[default]
    Given,
    /// `"#{... || use_default}"`: as if the line were not written.
    UseDefault,
    /// `"#{... || use_nil}"`: the parameter is unset.
    UseNil,
}

/// A section (`<name arg>`), or the root (name `""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub arg: String,
    pub params: Vec<Param>,
    pub children: Vec<Element>,
    pub loc: Loc,
}

impl Element {
    /// The last value given for `key` (Fluentd: a later line overrides an earlier one);
    /// `None` when that line asks for the default or for no value (see [`Element::entry`]).
    pub fn param(&self, key: &str) -> Option<&Param> {
        self.entry(key).filter(|p| p.kind == ValueKind::Given)
    }

    /// The last line for `key`, whatever its [`ValueKind`].
    pub fn entry(&self, key: &str) -> Option<&Param> {
        self.params.iter().rev().find(|p| p.key == key)
    }
}

/// Where `ENV` lookups go (a closure so that tests need not touch the process environment).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Parses the file at `path` (following `@include`s) with the process environment.
pub fn parse_file(path: &Path) -> Result<Element, ConfigError> {
    parse_file_with_env(path, &process_env)
}

/// Parses the file at `path` with `env` for `#{ENV[...]}`.
pub fn parse_file_with_env(path: &Path, env: EnvLookup<'_>) -> Result<Element, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(format!("cannot read config file {}: {e}", path.display()))
    })?;
    parse_str_inner(&text, path, env, 0)
}

/// Parses `text` as if it were the file `path` (includes resolve relative to its directory).
pub fn parse_str(text: &str, path: &Path, env: EnvLookup<'_>) -> Result<Element, ConfigError> {
    parse_str_inner(text, path, env, 0)
}

const MAX_INCLUDE_DEPTH: usize = 16;

fn parse_str_inner(
    text: &str,
    path: &Path,
    env: EnvLookup<'_>,
    depth: usize,
) -> Result<Element, ConfigError> {
    let file: Arc<str> = Arc::from(path.display().to_string());
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        line: 1,
        file: file.clone(),
        path: path.to_path_buf(),
        env,
        depth,
    };
    let mut root = Element {
        name: String::new(),
        arg: String::new(),
        params: Vec::new(),
        children: Vec::new(),
        loc: Loc { file, line: 1 },
    };
    p.body(&mut root, true)?;
    Ok(root)
}

struct Parser<'a, 'e> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    line: usize,
    file: Arc<str>,
    path: PathBuf,
    env: EnvLookup<'e>,
    depth: usize,
}

impl Parser<'_, '_> {
    fn loc(&self) -> Loc {
        Loc {
            file: self.file.clone(),
            line: self.line,
        }
    }
    fn err<T>(&self, msg: impl Into<String>) -> Result<T, ConfigError> {
        Err(ConfigError::at(&self.loc(), msg))
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }
    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.pos += 1;
        }
    }
    fn skip_to_eol(&mut self) {
        while let Some(c) = self.peek() {
            if c == b'\n' {
                break;
            }
            self.pos += 1;
        }
    }
    /// After a complete item: only spaces and an optional comment may follow on the line.
    fn expect_eol(&mut self, what: &str) -> Result<(), ConfigError> {
        self.skip_spaces();
        match self.peek() {
            None | Some(b'\n') => Ok(()),
            Some(b'#') => {
                self.skip_to_eol();
                Ok(())
            }
            Some(_) => {
                let rest = self.rest_of_line();
                self.err(format!("unexpected text after {what}: {rest:?}"))
            }
        }
    }
    fn rest_of_line(&self) -> String {
        let end = self.s[self.pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(self.s.len(), |i| self.pos + i);
        self.text[self.pos..end].trim_end().to_string()
    }

    fn body(&mut self, el: &mut Element, top: bool) -> Result<(), ConfigError> {
        loop {
            // Skip blank lines and comment lines.
            loop {
                match self.peek() {
                    Some(b' ' | b'\t' | b'\r' | b'\n') => {
                        self.bump();
                    }
                    Some(b'#') => self.skip_to_eol(),
                    _ => break,
                }
            }
            let Some(c) = self.peek() else {
                if top {
                    return Ok(());
                }
                return Err(ConfigError::at(
                    &el.loc,
                    format!(
                        "section <{}> is never closed (missing </{}>)",
                        el.name, el.name
                    ),
                ));
            };
            if c == b'<' {
                if self.s.get(self.pos + 1) == Some(&b'/') {
                    let loc = self.loc();
                    self.pos += 2;
                    let name = self.read_until_gt()?;
                    let name = name.trim();
                    if top {
                        return Err(ConfigError::at(
                            &loc,
                            format!("unexpected </{name}> with no open section"),
                        ));
                    }
                    if name != el.name {
                        return Err(ConfigError::at(
                            &loc,
                            format!(
                                "</{name}> does not close <{}> opened at line {}",
                                el.name, el.loc.line
                            ),
                        ));
                    }
                    self.expect_eol("a closing tag")?;
                    return Ok(());
                }
                let loc = self.loc();
                self.pos += 1;
                let inner = self.read_until_gt()?;
                let inner = inner.trim();
                let (name, arg) = match inner.find(|c: char| c.is_ascii_whitespace()) {
                    Some(i) => (&inner[..i], inner[i..].trim()),
                    None => (inner, ""),
                };
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(ConfigError::at(
                        &loc,
                        format!("invalid section name {name:?}"),
                    ));
                }
                self.expect_eol("a section tag")?;
                let mut child = Element {
                    name: name.to_string(),
                    arg: arg.to_string(),
                    params: Vec::new(),
                    children: Vec::new(),
                    loc,
                };
                self.body(&mut child, false)?;
                el.children.push(child);
                continue;
            }
            // A parameter line.
            let loc = self.loc();
            let start = self.pos;
            while let Some(c) = self.peek() {
                if c.is_ascii_whitespace() {
                    break;
                }
                self.pos += 1;
            }
            let key = self.text[start..self.pos].to_string();
            if key.contains('>') || key.contains('<') {
                return Err(ConfigError::at(
                    &loc,
                    format!("invalid parameter name {key:?}"),
                ));
            }
            self.skip_spaces();
            let (value, kind) = self.value()?;
            if key == "@include" || key == "include" {
                if kind != ValueKind::Given {
                    return Err(ConfigError::at(
                        &loc,
                        "@include needs a path, not use_default or use_nil",
                    ));
                }
                self.include(el, &value, &loc)?;
            } else {
                el.params.push(Param {
                    key,
                    value,
                    loc,
                    kind,
                });
            }
        }
    }

    fn read_until_gt(&mut self) -> Result<String, ConfigError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == b'>' {
                let s = self.text[start..self.pos].to_string();
                self.pos += 1;
                return Ok(s);
            }
            if c == b'\n' {
                break;
            }
            self.pos += 1;
        }
        self.err("section tag is missing its closing '>'")
    }

    fn value(&mut self) -> Result<(String, ValueKind), ConfigError> {
        let given = |v: String| (v, ValueKind::Given);
        match self.peek() {
            None | Some(b'\n') => Ok(given(String::new())),
            Some(b'#') => {
                self.skip_to_eol();
                Ok(given(String::new()))
            }
            Some(b'"') => {
                self.pos += 1;
                let v = self.double_quoted()?;
                self.expect_eol("a quoted value")?;
                Ok(v)
            }
            Some(b'\'') => {
                self.pos += 1;
                let v = self.single_quoted()?;
                self.expect_eol("a quoted value")?;
                Ok(given(v))
            }
            Some(b'[' | b'{') => self.bracketed().map(given),
            Some(_) => Ok(given(self.unquoted())),
        }
    }

    fn unquoted(&mut self) -> String {
        let start = self.pos;
        let mut end = self.pos;
        let mut prev_space = false;
        while let Some(c) = self.peek() {
            if c == b'\n' {
                break;
            }
            if c == b'#' && prev_space {
                self.skip_to_eol();
                break;
            }
            prev_space = c == b' ' || c == b'\t';
            self.pos += 1;
            if !prev_space && c != b'\r' {
                end = self.pos;
            }
        }
        self.text[start..end].to_string()
    }

    fn single_quoted(&mut self) -> Result<String, ConfigError> {
        let start_line = self.line;
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => {
                    return Err(ConfigError::at(
                        &Loc {
                            file: self.file.clone(),
                            line: start_line,
                        },
                        "unterminated single-quoted string",
                    ))
                }
                Some(b'\'') => break,
                Some(b'\\') if matches!(self.peek(), Some(b'\'' | b'\\')) => {
                    out.push(self.bump().unwrap_or(b'\\'))
                }
                Some(c) => out.push(c),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The string up to the closing quote, with escapes and `#{...}` evaluated. A `#{...}` that
    /// reaches `use_nil` (or `use_default`) makes the whole value that kind (nil first).
    fn double_quoted(&mut self) -> Result<(String, ValueKind), ConfigError> {
        let start_line = self.line;
        let mut out = Vec::new();
        let mut kind = ValueKind::Given;
        loop {
            let Some(c) = self.bump() else {
                return Err(ConfigError::at(
                    &Loc {
                        file: self.file.clone(),
                        line: start_line,
                    },
                    "unterminated double-quoted string",
                ));
            };
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.bump() else { continue };
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'f' => out.push(0x0c),
                        b'b' => out.push(0x08),
                        b'e' => out.push(0x1b),
                        b's' => out.push(b' '),
                        b'0' => out.push(0),
                        b'a' => out.push(0x07),
                        b'v' => out.push(0x0b),
                        b'\n' => {} // line continuation
                        other => out.push(other),
                    }
                }
                b'#' if self.peek() == Some(b'{') => {
                    self.pos += 1;
                    let loc = self.loc();
                    let start = self.pos;
                    let mut depth = 1;
                    while let Some(c) = self.bump() {
                        match c {
                            b'{' => depth += 1,
                            b'}' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    if depth != 0 {
                        return Err(ConfigError::at(&loc, "unterminated #{...} in string"));
                    }
                    let code = &self.text[start..self.pos - 1];
                    match ruby::eval(code, self.env).map_err(|e| ConfigError::at(&loc, e))? {
                        Embedded::Text(v) => out.extend_from_slice(v.as_bytes()),
                        Embedded::UseNil => kind = ValueKind::UseNil,
                        Embedded::UseDefault if kind == ValueKind::Given => {
                            kind = ValueKind::UseDefault
                        }
                        Embedded::UseDefault => {}
                    }
                }
                other => out.push(other),
            }
        }
        if kind != ValueKind::Given {
            return Ok((String::new(), kind));
        }
        Ok((String::from_utf8_lossy(&out).into_owned(), kind))
    }

    fn bracketed(&mut self) -> Result<String, ConfigError> {
        let start_line = self.line;
        let start = self.pos;
        let mut stack: Vec<u8> = Vec::new();
        let mut in_str: Option<u8> = None;
        loop {
            let Some(c) = self.bump() else {
                return Err(ConfigError::at(
                    &Loc {
                        file: self.file.clone(),
                        line: start_line,
                    },
                    "unterminated multi-line value: brackets never balance",
                ));
            };
            if let Some(q) = in_str {
                if c == b'\\' {
                    self.bump();
                } else if c == q {
                    in_str = None;
                } else if c == b'\n'
                    && self.line == start_line + 1
                    && !self.first_line_continues(start)
                {
                    return Ok(self.literal_line(start, start_line));
                }
                continue;
            }
            match c {
                b'"' | b'\'' => in_str = Some(c),
                b'[' => stack.push(b']'),
                b'{' => stack.push(b'}'),
                b']' | b'}' => {
                    if stack.pop() != Some(c) {
                        if self.line == start_line {
                            return Ok(self.literal_line(start, start_line));
                        }
                        return self.err("mismatched bracket in multi-line value");
                    }
                    if stack.is_empty() {
                        break;
                    }
                }
                b'\n' if self.line == start_line + 1 && !self.first_line_continues(start) => {
                    // `[foo` alone on a line that does not look like the start of a JSON value:
                    // an ordinary unquoted value.
                    return Ok(self.literal_line(start, start_line));
                }
                _ => {}
            }
        }
        // Balanced. Text after it on the same line means this was a plain value after all.
        let save = (self.pos, self.line);
        self.skip_spaces();
        if matches!(self.peek(), None | Some(b'\n' | b'#')) {
            self.pos = save.0;
            let v = self.text[start..self.pos].to_string();
            self.expect_eol("a bracketed value")?;
            return Ok(v);
        }
        if self.line == start_line {
            return Ok(self.literal_line(start, start_line));
        }
        self.err("unexpected text after a multi-line value")
    }

    /// Re-reads the value starting at `start` as an unquoted single-line value.
    fn literal_line(&mut self, start: usize, start_line: usize) -> String {
        self.pos = start;
        self.line = start_line;
        self.unquoted()
    }

    /// Whether the first line of a bracketed value (up to the newline just read) ends the way a
    /// multi-line JSON value's first line does: with `[`, `{` or `,`.
    fn first_line_continues(&self, start: usize) -> bool {
        let line = self.text[start..self.pos - 1].trim_end();
        line.ends_with(['[', '{', ','])
    }

    fn include(&mut self, el: &mut Element, spec: &str, loc: &Loc) -> Result<(), ConfigError> {
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(ConfigError::at(
                loc,
                "@include nested too deeply (a cycle?)",
            ));
        }
        if spec.is_empty() {
            return Err(ConfigError::at(loc, "@include needs a path"));
        }
        if spec.starts_with("http://") || spec.starts_with("https://") {
            return Err(ConfigError::at(loc, "@include of a URL is not supported"));
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        let full = if Path::new(spec).is_absolute() {
            PathBuf::from(spec)
        } else {
            base.join(spec)
        };
        let files: Vec<PathBuf> = if spec.contains(['*', '?', '[']) {
            let pattern = full.to_string_lossy().into_owned();
            let mut v: Vec<PathBuf> = glob::glob(&pattern)
                .map_err(|e| {
                    ConfigError::at(loc, format!("invalid @include pattern {spec:?}: {e}"))
                })?
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            v.sort();
            v
        } else {
            if !full.is_file() {
                return Err(ConfigError::at(
                    loc,
                    format!("@include: file not found: {}", full.display()),
                ));
            }
            vec![full]
        };
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| {
                ConfigError::at(loc, format!("@include: cannot read {}: {e}", f.display()))
            })?;
            let sub = parse_str_inner(&text, &f, self.env, self.depth + 1)?;
            el.params.extend(sub.params);
            el.children.extend(sub.children);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Element, ConfigError> {
        let env = |n: &str| {
            if n == "HOME_X" {
                Some("/x".to_string())
            } else {
                None
            }
        };
        parse_str(t, Path::new("t.conf"), &env)
    }

    #[test]
    fn basics() {
        let e = parse(
            "# c\n<source>\n  @type forward # trailing\n  port 24224\n</source>\n<match a.** b>\n  @type stdout\n  path /a#b\n  x \"q\\\"#{ENV['HOME_X']}\"\n  y 'a\\nb'\n  z [1,\n  2]\n</match>\n",
        )
        .unwrap();
        assert_eq!(e.children.len(), 2);
        assert_eq!(e.children[0].param("@type").unwrap().value, "forward");
        assert_eq!(e.children[0].param("port").unwrap().loc.line, 4);
        let m = &e.children[1];
        assert_eq!(m.arg, "a.** b");
        assert_eq!(m.param("path").unwrap().value, "/a#b");
        assert_eq!(m.param("x").unwrap().value, "q\"/x");
        assert_eq!(m.param("y").unwrap().value, "a\\nb");
        assert_eq!(m.param("z").unwrap().value, "[1,\n  2]");
    }

    #[test]
    fn multi_line_quoted_and_hash_values() {
        let e = parse("<a>\n  s \"line1\n  line2\"\n  h {\"k\": \"v\",\n   \"n\": [1, 2]}\n  lit [%s] x\n  crlf v\r\n</a>\r\n").unwrap();
        let a = &e.children[0];
        assert_eq!(a.param("s").unwrap().value, "line1\n  line2");
        assert_eq!(
            a.param("h").unwrap().value,
            "{\"k\": \"v\",\n   \"n\": [1, 2]}"
        );
        assert_eq!(a.param("h").unwrap().loc.line, 4);
        assert_eq!(a.param("lit").unwrap().value, "[%s] x");
        assert_eq!(a.param("lit").unwrap().loc.line, 6);
        assert_eq!(a.param("crlf").unwrap().value, "v");
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse("<a>\n x 1\n").unwrap_err().to_string(),
            "t.conf:1: section <a> is never closed (missing </a>)"
        );
        assert_eq!(
            parse("\n x \"#{ENV.fetch('NOPE')}\"\n")
                .unwrap_err()
                .to_string(),
            "t.conf:2: environment variable NOPE is not set (used as ENV.fetch('NOPE') without a default)"
        );
        assert!(parse("x \"#{`ls`}\"\n")
            .unwrap_err()
            .to_string()
            .starts_with(
            "t.conf:1: unsupported embedded Ruby code #{`ls`}: logship evaluates only ENV['X'], "
        ));
        assert!(parse("@include \"#{use_default}\"\n").is_err());
    }

    #[test]
    fn embedded_ruby_in_values() {
        let e = parse(
            "a \"#{ENV['NOPE']}\"\nb \"#{ENV.fetch('NOPE', 'd')}\"\nc \"pre-#{ENV['HOME_X'] || 'd'}-post\"\n\
             d \"#{ENV['NOPE'] || use_default}\"\ne \"x#{ENV['NOPE'] || use_nil}y\"\n\
             f \"#{use_default}#{use_nil}\"\ng \"#{ENV['HOME_X'] || use_nil}\"\n",
        )
        .unwrap();
        let v = |k: &str| {
            let p = e.entry(k).unwrap();
            (p.value.as_str(), p.kind)
        };
        // Ruby's nil interpolates as "" (as in Fluentd).
        assert_eq!(v("a"), ("", ValueKind::Given));
        assert_eq!(v("b"), ("d", ValueKind::Given));
        assert_eq!(v("c"), ("pre-/x-post", ValueKind::Given));
        assert_eq!(v("d"), ("", ValueKind::UseDefault));
        // use_nil / use_default apply to the whole value; nil wins.
        assert_eq!(v("e"), ("", ValueKind::UseNil));
        assert_eq!(v("f"), ("", ValueKind::UseNil));
        assert_eq!(v("g"), ("/x", ValueKind::Given));
        // param() sees only given values; entry() sees every line.
        assert!(e.param("d").is_none() && e.param("e").is_none());
        assert_eq!(e.param("g").unwrap().value, "/x");
    }
}
