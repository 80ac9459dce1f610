//! The Forward protocol handshake (`security` section in fluentd): HELO → PING → PONG.
//!
//! 1. On connect the **server** sends `["HELO", {"nonce": bin(16 random bytes),
//!    "auth": salt-or-"", "keepalive": true}]`. `auth` is a random salt when user
//!    authentication is on, else the empty string.
//! 2. The **client** answers `["PING", client_hostname, shared_key_salt,
//!    hex(sha512(shared_key_salt + client_hostname + nonce + shared_key)), username,
//!    hex(sha512(auth_salt + username + password))]` (the last two are `""` without user auth).
//! 3. The server checks the digest (and the user) and answers `["PONG", true, "",
//!    server_hostname, hex(sha512(shared_key_salt + server_hostname + nonce + shared_key))]`,
//!    or `["PONG", false, reason, "", ""]` and closes the connection.
//! 4. The client checks the PONG digest (proving the server knows the key too).
//!
//! # Clients (`<security><client>`)
//!
//! As in Fluentd's `in_forward`, `<client>` sections name hosts or networks
//! ([`ClientRule`]). The first rule whose network holds the peer's address gives the shared
//! key for that peer (its own `shared_key`, or the section's) and may narrow which `<user>`s
//! may log in from there (`users`). A peer that matches no rule is *anonymous*: it is refused
//! (`PONG false, "anonymous source host '…' denied"`) unless `allow_anonymous_source` is true
//! (the default).

use bytes::Bytes;
use rand::RngCore;
use sha2::{Digest, Sha512};

use super::codec::raw::{self, Raw};
use super::codec::{write_array_len, write_bin, write_str, PingFrame};
use crate::secret::Secret;

/// One user for user authentication (`<user>` in fluentd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredential {
    /// The username.
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// Server-side handshake settings (`<security>` in fluentd's in_forward).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// The shared key both sides must know.
    pub shared_key: Secret,
    /// This server's hostname, sent in PONG and mixed into its digest.
    pub self_hostname: String,
    /// Users; when non-empty, user authentication is on (`user_auth true`).
    pub users: Vec<UserCredential>,
    /// `<client>` rules, in config order (see the module docs).
    pub clients: Vec<ClientRule>,
    /// Whether a peer that matches no `<client>` rule may log in (`allow_anonymous_source`).
    pub allow_anonymous_source: bool,
    /// Test hook: a fixed nonce instead of 16 random bytes. Never set this in production.
    pub fixed_nonce: Option<Vec<u8>>,
    /// Test hook: a fixed user-auth salt. Never set this in production.
    pub fixed_auth_salt: Option<Vec<u8>>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            shared_key: Secret::default(),
            self_hostname: String::new(),
            users: Vec::new(),
            clients: Vec::new(),
            allow_anonymous_source: true,
            fixed_nonce: None,
            fixed_auth_salt: None,
        }
    }
}

/// One `<client>` section: the peers it covers and what applies to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRule {
    /// The peers: `network`, or `host` resolved to one address.
    pub network: ipnet::IpNet,
    /// This client's shared key instead of the section's.
    pub shared_key: Option<Secret>,
    /// The usernames that may log in from this client (empty: every `<user>`).
    pub users: Vec<String>,
}

impl SecurityConfig {
    /// The first `<client>` rule covering `addr`.
    fn client_for(&self, addr: Option<std::net::IpAddr>) -> Option<&ClientRule> {
        let addr = addr?;
        self.clients.iter().find(|c| c.network.contains(&addr))
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The peer sent something that is not the expected handshake message.
    #[error("invalid handshake message: {0}")]
    Invalid(&'static str),
    /// The server refused us (PONG false) with this reason.
    #[error("server refused the handshake: {0}")]
    Refused(String),
    /// The server's PONG digest does not match our shared key.
    #[error("PONG digest mismatch: the server does not know the shared key")]
    DigestMismatch,
    /// The server reported our own hostname.
    #[error("server hostname equals our own hostname")]
    SameHostname,
}

/// hex(sha512(parts concatenated)).
pub fn sha512_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// The server's state for one connection's handshake.
#[derive(Debug, Clone)]
pub struct ServerHandshake {
    nonce: Vec<u8>,
    auth_salt: Vec<u8>,
}

impl ServerHandshake {
    /// Fresh nonce (and auth salt when users are configured).
    pub fn new(cfg: &SecurityConfig) -> Self {
        let nonce = cfg.fixed_nonce.clone().unwrap_or_else(|| random_bytes(16));
        let auth_salt = if cfg.users.is_empty() {
            Vec::new()
        } else {
            cfg.fixed_auth_salt
                .clone()
                .unwrap_or_else(|| random_bytes(16))
        };
        Self { nonce, auth_salt }
    }

    /// The nonce sent in HELO.
    pub fn nonce(&self) -> &[u8] {
        &self.nonce
    }

    /// The HELO message bytes; `keepalive` false tells the client that the server closes the
    /// connection after its first message (`deny_keepalive`).
    pub fn helo(&self, keepalive: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        write_array_len(&mut out, 2);
        write_str(&mut out, b"HELO");
        out.push(0x83);
        write_str(&mut out, b"nonce");
        write_bin(&mut out, &self.nonce);
        write_str(&mut out, b"auth");
        if self.auth_salt.is_empty() {
            write_str(&mut out, b"");
        } else {
            write_bin(&mut out, &self.auth_salt);
        }
        write_str(&mut out, b"keepalive");
        out.push(if keepalive { 0xc3 } else { 0xc2 });
        out
    }

    /// Checks a PING from `peer`. `Ok(shared_key)`: the key the peer proved to know (its
    /// `<client>` rule's, or the section's), to sign the PONG with. `Err(reason)` is what goes
    /// into the failing PONG.
    pub fn check_ping(
        &self,
        cfg: &SecurityConfig,
        ping: &PingFrame,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Secret, String> {
        let client = cfg.client_for(peer);
        if client.is_none() && !cfg.allow_anonymous_source {
            let addr = peer.map(|a| a.to_string()).unwrap_or_else(|| "unix".into());
            return Err(format!("anonymous source host '{addr}' denied"));
        }
        let key = client
            .and_then(|c| c.shared_key.as_ref())
            .unwrap_or(&cfg.shared_key)
            .expose();
        let expected = sha512_hex(&[
            &ping.shared_key_salt,
            &ping.client_hostname,
            &self.nonce,
            key.as_bytes(),
        ]);
        if !constant_time_eq(expected.as_bytes(), &ping.shared_key_hexdigest) {
            return Err("shared_key mismatch".into());
        }
        if !cfg.users.is_empty() {
            let allowed = |u: &UserCredential| match client {
                Some(c) if !c.users.is_empty() => c.users.contains(&u.username),
                _ => true,
            };
            let mut ok = false;
            for u in cfg.users.iter().filter(|u| allowed(u)) {
                let h = sha512_hex(&[
                    &self.auth_salt,
                    &ping.username,
                    u.password.expose().as_bytes(),
                ]);
                ok |= u.username.as_bytes() == &ping.username[..]
                    && constant_time_eq(h.as_bytes(), &ping.password_digest);
            }
            if !ok {
                return Err("username/password mismatch".into());
            }
        }
        Ok(Secret::new(key))
    }

    /// The PONG for `result` (the outcome of [`ServerHandshake::check_ping`]).
    pub fn pong(
        &self,
        cfg: &SecurityConfig,
        ping: &PingFrame,
        result: &Result<Secret, String>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(192);
        write_array_len(&mut out, 5);
        write_str(&mut out, b"PONG");
        match result {
            Ok(key) => {
                out.push(0xc3);
                write_str(&mut out, b"");
                write_str(&mut out, cfg.self_hostname.as_bytes());
                let d = sha512_hex(&[
                    &ping.shared_key_salt,
                    cfg.self_hostname.as_bytes(),
                    &self.nonce,
                    key.expose().as_bytes(),
                ]);
                write_str(&mut out, d.as_bytes());
            }
            Err(reason) => {
                out.push(0xc2);
                write_str(&mut out, reason.as_bytes());
                write_str(&mut out, b"");
                write_str(&mut out, b"");
            }
        }
        out
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A HELO as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helo {
    /// The server's nonce.
    pub nonce: Bytes,
    /// The user-auth salt (empty: no user auth).
    pub auth_salt: Bytes,
    /// Whether the server keeps the connection open.
    pub keepalive: bool,
}

/// Parses a HELO frame.
pub fn parse_helo(frame: &Bytes) -> Result<Helo, HandshakeError> {
    let v = raw::array(frame).map_err(|_| HandshakeError::Invalid("HELO is not an array"))?;
    match v.as_slice() {
        [Raw::Bytes(h), Raw::Map(opts)] if &h[..] == b"HELO" => {
            let mut helo = Helo {
                nonce: Bytes::new(),
                auth_salt: Bytes::new(),
                keepalive: true,
            };
            for (k, val) in opts {
                match (&k[..], val) {
                    (b"nonce", Raw::Bytes(b)) => helo.nonce = b.clone(),
                    (b"auth", Raw::Bytes(b)) => helo.auth_salt = b.clone(),
                    (b"keepalive", Raw::Bool(b)) => helo.keepalive = *b,
                    _ => {}
                }
            }
            if helo.nonce.is_empty() {
                return Err(HandshakeError::Invalid("HELO without nonce"));
            }
            Ok(helo)
        }
        _ => Err(HandshakeError::Invalid("expected [\"HELO\", {options}]")),
    }
}

/// Client-side handshake state.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    /// Our hostname.
    pub self_hostname: String,
    /// The shared key.
    pub shared_key: String,
    /// Username/password when the server requires user auth.
    pub user: Option<UserCredential>,
    salt: String,
}

impl ClientHandshake {
    /// A client handshake with a fresh salt (32 hex chars, like fluentd's out_forward).
    pub fn new(self_hostname: String, shared_key: String, user: Option<UserCredential>) -> Self {
        Self {
            self_hostname,
            shared_key,
            user,
            salt: hex::encode(random_bytes(16)),
        }
    }

    /// The PING answering `helo`.
    pub fn ping(&self, helo: &Helo) -> Vec<u8> {
        let digest = sha512_hex(&[
            self.salt.as_bytes(),
            self.self_hostname.as_bytes(),
            &helo.nonce,
            self.shared_key.as_bytes(),
        ]);
        let (user, pass) = match (&self.user, helo.auth_salt.is_empty()) {
            (Some(u), false) => (
                u.username.clone(),
                sha512_hex(&[
                    &helo.auth_salt,
                    u.username.as_bytes(),
                    u.password.expose().as_bytes(),
                ]),
            ),
            _ => (String::new(), String::new()),
        };
        let mut out = Vec::with_capacity(256);
        write_array_len(&mut out, 6);
        write_str(&mut out, b"PING");
        write_str(&mut out, self.self_hostname.as_bytes());
        write_str(&mut out, self.salt.as_bytes());
        write_str(&mut out, digest.as_bytes());
        write_str(&mut out, user.as_bytes());
        write_str(&mut out, pass.as_bytes());
        out
    }

    /// Checks the server's PONG.
    pub fn check_pong(&self, helo: &Helo, frame: &Bytes) -> Result<(), HandshakeError> {
        let v = raw::array(frame).map_err(|_| HandshakeError::Invalid("PONG is not an array"))?;
        match v.as_slice() {
            [Raw::Bytes(p), Raw::Bool(ok), reason, host, digest] if &p[..] == b"PONG" => {
                if !ok {
                    let r = match reason {
                        Raw::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                        _ => String::new(),
                    };
                    return Err(HandshakeError::Refused(r));
                }
                let (Raw::Bytes(host), Raw::Bytes(digest)) = (host, digest) else {
                    return Err(HandshakeError::Invalid(
                        "PONG hostname/digest must be strings",
                    ));
                };
                if &host[..] == self.self_hostname.as_bytes() {
                    return Err(HandshakeError::SameHostname);
                }
                let expected = sha512_hex(&[
                    self.salt.as_bytes(),
                    host,
                    &helo.nonce,
                    self.shared_key.as_bytes(),
                ]);
                if !constant_time_eq(expected.as_bytes(), digest) {
                    return Err(HandshakeError::DigestMismatch);
                }
                Ok(())
            }
            _ => Err(HandshakeError::Invalid(
                "expected [\"PONG\", bool, reason, hostname, digest]",
            )),
        }
    }
}
