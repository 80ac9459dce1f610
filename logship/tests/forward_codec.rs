//! Decoder unit tests: time forms, modes, options, limits and error classification.

use bytes::{Bytes, BytesMut};
use logship::event::EventTime;
use logship::forward::codec::{append_str_pair, encode_ack, parse_ack};
use logship::forward::{DecodeOptions, ForwardDecoder, Frame, FrameError, Mode};

fn decode_one(bytes: &[u8]) -> Result<Frame, FrameError> {
    decode_with(DecodeOptions::default(), bytes)
}

fn decode_with(opts: DecodeOptions, bytes: &[u8]) -> Result<Frame, FrameError> {
    let mut dec = ForwardDecoder::new(opts);
    let mut buf = BytesMut::from(bytes);
    let raw = dec.next_raw(&mut buf)?.expect("complete frame");
    assert!(buf.is_empty());
    dec.parse(raw)
}

fn message_with_time(time: &[u8]) -> Vec<u8> {
    let mut v = vec![0x93, 0xa1, b't'];
    v.extend_from_slice(time);
    v.extend_from_slice(&[0x81, 0xa1, b'k', 0x01]);
    v
}

fn time_of(f: Frame) -> EventTime {
    match f {
        Frame::Events(ev) => ev.events[0].time,
        other => panic!("{other:?}"),
    }
}

#[test]
fn all_time_forms() {
    let cases: Vec<(Vec<u8>, EventTime)> = vec![
        (vec![0x05], EventTime::new(5, 0)),
        (vec![0xcc, 200], EventTime::new(200, 0)),
        (vec![0xcd, 0x01, 0x00], EventTime::new(256, 0)),
        (
            vec![0xce, 0x67, 0xd4, 0x46, 0xa6],
            EventTime::new(1741964966, 0),
        ),
        (
            vec![0xcf, 0, 0, 0, 0, 0x67, 0xd4, 0x46, 0xa6],
            EventTime::new(1741964966, 0),
        ),
        (
            vec![0xd2, 0x67, 0xd4, 0x46, 0xa6],
            EventTime::new(1741964966, 0),
        ),
        (
            vec![0xd3, 0, 0, 0, 0, 0x67, 0xd4, 0x46, 0xa6],
            EventTime::new(1741964966, 0),
        ),
        (vec![0xff], EventTime::new(-1, 0)),
        (vec![0xd0, 0x80], EventTime::new(-128, 0)),
        (
            vec![0xd7, 0x00, 0x67, 0xd4, 0x46, 0xa6, 0x00, 0x00, 0x00, 0x07],
            EventTime::new(1741964966, 7),
        ),
        (
            vec![
                0xc7, 0x08, 0x00, 0x67, 0xd4, 0x46, 0xa6, 0x3b, 0x9a, 0xc9, 0xff,
            ],
            EventTime::new(1741964966, 999_999_999),
        ),
        (
            [&[0xcbu8][..], &1741964966.5f64.to_be_bytes()].concat(),
            EventTime::new(1741964966, 500_000_000),
        ),
        (
            [&[0xcau8][..], &1.5f32.to_be_bytes()].concat(),
            EventTime::new(1, 500_000_000),
        ),
    ];
    for (t, expected) in cases {
        assert_eq!(
            time_of(decode_one(&message_with_time(&t)).unwrap()),
            expected,
            "{t:x?}"
        );
    }
    // nil and 0 become "now"
    for t in [vec![0xc0], vec![0x00]] {
        let got = time_of(decode_one(&message_with_time(&t)).unwrap());
        assert!((got.secs - EventTime::now().secs).abs() < 5);
    }
    // a str in the time position makes it a PackedForward frame whose payload is garbage
    assert!(decode_one(&message_with_time(&[0xa1, b'x'])).is_err());
    // invalid forms
    for t in [
        vec![0xd7, 0x01, 0, 0, 0, 0, 0, 0, 0, 0], // ext type 1
        vec![0xc7, 0x04, 0x00, 0, 0, 0, 0],       // ext8 length 4
        vec![0xd7, 0x00, 0, 0, 0, 1, 0x3b, 0x9a, 0xca, 0x00], // nsec = 1e9
        vec![0xc3],                               // bool
        [&[0xcbu8][..], &f64::NAN.to_be_bytes()].concat(),
    ] {
        let r = decode_one(&message_with_time(&t));
        assert!(matches!(r, Err(FrameError::BadTime(_))), "{t:x?}: {r:?}");
    }
}

#[test]
fn modes_and_options() {
    // Forward with option size + chunk
    let f = decode_one(
        b"\x93\xa1t\x92\x92\x01\x80\x92\x02\x81\xa1a\xc0\x82\xa4size\x02\xa5chunk\xa3abc",
    )
    .unwrap();
    let Frame::Events(ev) = f else { panic!() };
    assert_eq!(ev.mode, Mode::Forward);
    assert_eq!(ev.events.len(), 2);
    assert_eq!(ev.chunk.as_deref(), Some(&b"abc"[..]));
    assert_eq!(ev.size_hint, Some(2));
    // PackedForward as str, no option
    let f = decode_one(b"\x92\xa1t\xa6\x92\x01\x80\x92\x02\x80").unwrap();
    let Frame::Events(ev) = f else { panic!() };
    assert_eq!((ev.mode, ev.events.len()), (Mode::PackedForward, 2));
    // a lying size hint (4 billion) does not matter
    let f = decode_one(b"\x93\xa1t\xc4\x03\x92\x01\x80\x81\xa4size\xce\xff\xff\xff\xff").unwrap();
    let Frame::Events(ev) = f else { panic!() };
    assert_eq!(ev.events.len(), 1);
    // compressed "text" is no compression; unknown algorithms are errors
    let f = decode_one(b"\x93\xa1t\xc4\x03\x92\x01\x80\x81\xaacompressed\xa4text").unwrap();
    assert!(matches!(f, Frame::Events(ref ev) if ev.mode == Mode::PackedForward));
    assert!(matches!(
        decode_one(b"\x93\xa1t\xc4\x03\x92\x01\x80\x81\xaacompressed\xa4zstd"),
        Err(FrameError::UnsupportedCompression(_))
    ));
    // heartbeat nil
    assert_eq!(decode_one(b"\xc0").unwrap(), Frame::Heartbeat);
    // a Message whose tag is "PING" is still a Message
    let f = decode_one(b"\x93\xa4PING\x01\x80").unwrap();
    assert!(matches!(f, Frame::Events(ref ev) if &*ev.tag == "PING"));
    // records are zero-copy slices of the frame
    let frame = Bytes::from_static(b"\x93\xa1t\x01\x81\xa1k\xa1v");
    let mut dec = ForwardDecoder::default();
    let Frame::Events(ev) = dec.parse(frame.clone()).unwrap() else {
        panic!()
    };
    assert_eq!(ev.events[0].record.as_ptr(), frame[4..].as_ptr());
}

#[test]
fn tags() {
    assert!(matches!(
        decode_one(b"\x93\xa2\xff\xfe\x01\x80"),
        Err(FrameError::BadTag(_))
    ));
    assert!(matches!(
        decode_one(b"\x93\xc4\x01t\x01\x80"),
        Err(FrameError::BadTag(_))
    ));
    assert!(matches!(
        decode_one(b"\x93\x01\x01\x80"),
        Err(FrameError::BadTag(_))
    ));
    assert!(matches!(decode_one(b"\xc2"), Err(FrameError::BadShape(_))));
}

#[test]
fn limits_are_enforced_on_the_header() {
    let opts = DecodeOptions {
        max_frame_size: 1024,
        ..Default::default()
    };
    // a declared 1 GB bin: rejected after only the header bytes arrived
    let mut dec = ForwardDecoder::new(opts.clone());
    let mut buf = BytesMut::from(&b"\x93\xa1t\xc6\x40\x00\x00\x00"[..]);
    assert!(matches!(
        dec.next_raw(&mut buf),
        Err(FrameError::FrameTooLarge { .. })
    ));
    // default limit (32 MiB) also rejects 1 GB immediately
    let mut dec = ForwardDecoder::default();
    let mut buf = BytesMut::from(&b"\x93\xa1t\xc6\x40\x00\x00\x00"[..]);
    assert!(matches!(
        dec.next_raw(&mut buf),
        Err(FrameError::FrameTooLarge { .. })
    ));
    // an array declaring more elements than bytes allowed
    let mut dec = ForwardDecoder::new(opts.clone());
    let mut buf = BytesMut::from(&b"\xdd\x00\x10\x00\x00"[..]);
    assert!(matches!(
        dec.next_raw(&mut buf),
        Err(FrameError::FrameTooLarge { .. })
    ));
    // an incomplete frame is not an error
    let mut dec = ForwardDecoder::new(opts.clone());
    let mut buf = BytesMut::from(&b"\x93\xa1t\xc4\x10abc"[..]);
    assert_eq!(dec.next_raw(&mut buf).unwrap(), None);
    assert!(dec.in_progress());
    // depth
    let deep = [vec![0x91u8; 200], vec![0xc0]].concat();
    let mut dec = ForwardDecoder::default();
    let mut buf = BytesMut::from(&deep[..]);
    assert!(matches!(
        dec.next_raw(&mut buf),
        Err(FrameError::TooDeep { .. })
    ));
    // deep record inside a PackedForward bin is also caught
    let mut rec = vec![0x81, 0xa1, b'k'];
    rec.extend(vec![0x91u8; 150]);
    rec.push(0xc0);
    let mut entry = vec![0x92, 0x01];
    entry.extend(rec);
    let mut frame = vec![0x92, 0xa1, b't', 0xc5];
    frame.extend_from_slice(&(entry.len() as u16).to_be_bytes());
    frame.extend(entry);
    assert!(matches!(
        decode_one(&frame),
        Err(FrameError::TooDeep { .. })
    ));
    // reserved byte
    let mut dec = ForwardDecoder::default();
    let mut buf = BytesMut::from(&b"\x93\xc1"[..]);
    assert!(matches!(
        dec.next_raw(&mut buf),
        Err(FrameError::InvalidMsgpack(_))
    ));
}

#[test]
fn record_must_be_map_unless_skipping() {
    let bytes = b"\x92\xa1t\x92\x92\x01\x05\x92\x02\x80";
    assert_eq!(decode_one(bytes), Err(FrameError::RecordNotMap));
    let f = decode_with(
        DecodeOptions {
            skip_invalid_event: true,
            ..Default::default()
        },
        bytes,
    )
    .unwrap();
    let Frame::Events(ev) = f else { panic!() };
    assert_eq!((ev.events.len(), ev.skipped), (1, 1));
    assert_eq!(
        decode_one(b"\x93\xa1t\x01\x05"),
        Err(FrameError::RecordNotMap)
    );
}

#[test]
fn error_classification() {
    assert!(!FrameError::FrameTooLarge {
        needed: 1,
        limit: 0
    }
    .connection_can_continue());
    assert!(!FrameError::TooDeep { limit: 1 }.connection_can_continue());
    assert!(!FrameError::InvalidMsgpack("x").connection_can_continue());
    assert!(FrameError::RecordNotMap.connection_can_continue());
    assert!(FrameError::BadTag("x").connection_can_continue());
}

#[test]
fn record_rewrite_and_ack_helpers() {
    // fixmap → fixmap, 15 → map16
    let r = append_str_pair(b"\x81\xa1a\x01", &[("host", "h1")]).unwrap();
    assert_eq!(&r[..], b"\x82\xa1a\x01\xa4host\xa2h1");
    let mut m15 = vec![0x8f];
    for i in 0..15u8 {
        m15.extend_from_slice(&[0xa1, b'a' + i, i]);
    }
    let r = append_str_pair(&m15, &[("x", "y")]).unwrap();
    assert_eq!(&r[..3], b"\xde\x00\x10");
    assert_eq!(&r[3..3 + 45], &m15[1..]);
    assert!(append_str_pair(b"\x91\x01", &[("x", "y")]).is_none());
    let ack = encode_ack(b"chunk-1");
    assert_eq!(parse_ack(&ack), Some(&b"chunk-1"[..]));
}
