//! The Fluentd Forward protocol (v1): server (`in_forward`), client, decoder and handshake.
//!
//! # Wire format
//!
//! A connection carries a stream of msgpack objects, one per message, back to back (no
//! length prefix). The server finds where an object ends by walking msgpack headers
//! ([`codec::FrameScanner`], resumable, no value tree). Every event message is an array whose
//! first element is the **tag** (a msgpack str, valid UTF-8):
//!
//! | mode | shape |
//! | --- | --- |
//! | Message | `[tag, time, record]` or `[tag, time, record, option]` |
//! | Forward | `[tag, [[time, record], ...], option?]` |
//! | PackedForward | `[tag, bin-or-str(concatenated msgpack [time, record] arrays), option?]` |
//! | CompressedPackedForward | PackedForward whose payload is gzip, `option.compressed == "gzip"`; the payload may hold several gzip members back to back |
//!
//! A top-level `nil` is accepted and ignored (keep-alive). The **record** must be a msgpack
//! map; it is kept as a zero-copy [`bytes::Bytes`] slice of the received frame.
//!
//! # Time
//!
//! The time is an integer (seconds, any msgpack int width), a float (seconds with fraction,
//! float32 or float64), or an **EventTime**: msgpack ext type 0 with 8 bytes (fixext8 `d7 00`
//! or ext8 `c7 08 00`) = big-endian u32 seconds + big-endian u32 nanoseconds. As fluentd does,
//! a time of `nil` or `0` is replaced by the current time.
//!
//! # Options
//!
//! The option map may hold `size` (event count, or for some clients the payload length — a
//! hint only, never trusted for allocation), `chunk` (an ack id, a str) and `compressed`
//! (`"gzip"`; `"text"` means none). Unknown keys are ignored.
//!
//! # Acks (at-least-once)
//!
//! When a message carries `chunk`, the server replies `{"ack": chunk}` **after** the pipeline
//! holds the events ([`crate::event::EventSink::emit`] resolved `Ok`). If the pipeline refuses
//! them, no ack is sent and the connection is closed, so the client resends.
//!
//! # Handshake (`<security>`)
//!
//! See [`handshake`]: server `HELO {nonce, auth, keepalive}` → client `PING` with
//! `hex(sha512(salt + client_hostname + nonce + shared_key))` (and, with users,
//! `hex(sha512(auth_salt + username + password))`) → server `PONG true` with
//! `hex(sha512(salt + server_hostname + nonce + shared_key))`, or `PONG false, reason` and close.
//!
//! # Heartbeat
//!
//! A UDP datagram to the server's port is answered with one NUL byte (fluentd's
//! `in_forward` does the same for `out_forward`'s `heartbeat_type udp`).
//!
//! # Limits
//!
//! - Frame size: `chunk_size_limit` (default 32 MiB). A str/bin/array header that declares
//!   more is rejected as soon as the header is read, before any payload is buffered.
//! - Nesting depth (default 100); a CompressedPackedForward payload inflates window by window
//!   within `max_decompressed_size` (256 MiB) and `max_decompression_ratio` ([`inflate`]).
//! - Deadlines of a frame in progress: `handshake_timeout`, `read_timeout`,
//!   `min_receive_rate` ([`deadline`]).
//! - `max_connections` (default from the open-file limit): the stalest connection that
//!   delivers nothing is evicted to admit a new one ([`admission`]).
//! - Receive buffers and inflate windows come out of the process memory budget
//!   ([`recv_buffer`], [`crate::memory_budget`]): what does not fit waits (TCP backpressure).
//!
//! Any malformed frame closes only its connection (rate-limited WARN, `frames_malformed`
//! counter). One connection's loop: [`connection`]; the properties the fuzzers check:
//! [`fuzzing`].

pub mod admission;
pub mod client;
pub mod codec;
pub mod connection;
pub mod deadline;
pub mod fuzzing;
pub mod handshake;
pub mod hostname;
pub mod inflate;
pub mod recv_buffer;
pub mod server;
pub mod source;

pub use client::{
    encode_packed_forward, encode_record_from_json, new_chunk_id, ClientConfig, ClientError,
    ForwardClient,
};
pub use codec::{
    CompressedFrame, DecodeOptions, EventsFrame, ForwardDecoder, Frame, FrameError, FrameParser,
    FrameScanner, Mode, Parsed, PingFrame,
};
pub use connection::ConnectionError;
pub use handshake::{ClientRule, HandshakeError, SecurityConfig, UserCredential};
pub use server::{
    run, serve, ForwardError, ForwardListeners, ForwardMetrics, ForwardServer, ForwardServerConfig,
    TlsConfig,
};
