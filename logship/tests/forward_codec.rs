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

/// The events of a frame as (time, record bytes, metadata bytes).
fn events_of(f: Frame) -> Vec<(EventTime, Vec<u8>, Option<Vec<u8>>)> {
    match f {
        Frame::Events(ev) => ev
            .events
            .into_iter()
            .map(|e| (e.time, e.record.to_vec(), e.metadata.map(|m| m.to_vec())))
            .collect(),
        other => panic!("{other:?}"),
    }
}

const EVENT_TIME: [u8; 10] = [0xd7, 0x00, 0x67, 0xd4, 0x46, 0xa6, 0x00, 0x00, 0x00, 0x07];
const RECORD: [u8; 4] = [0x81, 0xa1, b'k', 0x01];
const META_A: [u8; 4] = [0x81, 0xa1, b'a', 0x01];
const META_B: [u8; 4] = [0x81, 0xa1, b'b', 0x02];

/// `[[time, maps...], RECORD]` as one Forward-mode entry.
fn v15_entry(time: &[u8], maps: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![0x92, 0x90 + 1 + maps.len() as u8];
    v.extend_from_slice(time);
    for m in maps {
        v.extend_from_slice(m);
    }
    v.extend_from_slice(&RECORD);
    v
}

#[test]
fn v15_metadata_entries_in_every_mode() {
    let t = EventTime::new(1741964966, 7);
    let entry = v15_entry(&EVENT_TIME, &[&META_A]);
    let expected = vec![(t, RECORD.to_vec(), Some(META_A.to_vec()))];

    // Forward
    let mut fwd = vec![0x92, 0xa1, b't', 0x91];
    fwd.extend_from_slice(&entry);
    assert_eq!(events_of(decode_one(&fwd).unwrap()), expected);

    // PackedForward (bin) and CompressedPackedForward
    let mut packed = vec![0x92, 0xa1, b't', 0xc4, entry.len() as u8];
    packed.extend_from_slice(&entry);
    assert_eq!(events_of(decode_one(&packed).unwrap()), expected);
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&entry).unwrap();
        e.finish().unwrap()
    };
    let mut cpf = vec![0x93, 0xa1, b't', 0xc4, gz.len() as u8];
    cpf.extend_from_slice(&gz);
    cpf.extend_from_slice(&[0x81, 0xaa]);
    cpf.extend_from_slice(b"compressed");
    cpf.extend_from_slice(&[0xa4]);
    cpf.extend_from_slice(b"gzip");
    match decode_one(&cpf).unwrap() {
        Frame::Events(ev) => assert_eq!(ev.mode, Mode::CompressedPackedForward),
        other => panic!("{other:?}"),
    }
    assert_eq!(events_of(decode_one(&cpf).unwrap()), expected);

    // Message mode with `[time, {metadata}]` as its time (3 and 4 elements)
    let mut msg = vec![0x93, 0xa1, b't', 0x92];
    msg.extend_from_slice(&EVENT_TIME);
    msg.extend_from_slice(&META_A);
    msg.extend_from_slice(&RECORD);
    assert_eq!(events_of(decode_one(&msg).unwrap()), expected);
    let mut msg4 = msg.clone();
    msg4[0] = 0x94;
    msg4.push(0x80);
    assert_eq!(events_of(decode_one(&msg4).unwrap()), expected);
}

#[test]
fn v15_time_forms_and_map_counts() {
    let packed = |entries: &[Vec<u8>]| {
        let body: Vec<u8> = entries.concat();
        let mut v = vec![0x92, 0xa1, b't', 0xc5];
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(&body);
        v
    };
    let entries = vec![
        // integer and float times inside the v1.5 array
        v15_entry(&[0xce, 0x67, 0xd4, 0x46, 0xa6], &[&META_A]),
        v15_entry(
            &[&[0xcbu8][..], &1741964966.5f64.to_be_bytes()].concat(),
            &[&META_A],
        ),
        // no map: metadata is present and empty
        v15_entry(&EVENT_TIME, &[]),
        // two maps: merged, pairs in order
        v15_entry(&EVENT_TIME, &[&META_A, &META_B]),
        // a plain time next to them: no metadata at all
        [&[0x92u8][..], &EVENT_TIME, &RECORD].concat(),
    ];
    let got = events_of(decode_one(&packed(&entries)).unwrap());
    let metas: Vec<Option<Vec<u8>>> = got.iter().map(|e| e.2.clone()).collect();
    assert_eq!(
        metas,
        vec![
            Some(META_A.to_vec()),
            Some(META_A.to_vec()),
            Some(vec![0x80]),
            Some(vec![0x82, 0xa1, b'a', 0x01, 0xa1, b'b', 0x02]),
            None,
        ]
    );
    assert_eq!(got[0].0, EventTime::new(1741964966, 0));
    assert_eq!(got[1].0, EventTime::new(1741964966, 500_000_000));
    assert!(got.iter().all(|e| e.1 == RECORD));
}

#[test]
fn v15_malformed_time_arrays_are_errors_or_skipped() {
    let forward = |entry: Vec<u8>| {
        let mut v = vec![0x92, 0xa1, b't', 0x91];
        v.extend_from_slice(&entry);
        v
    };
    let cases = [
        // empty time array
        vec![0x92, 0x90, 0x81, 0xa1, b'k', 0x01],
        // metadata that is not a map
        [&[0x92u8, 0x92][..], &EVENT_TIME, &[0x01], &RECORD].concat(),
        // a string where the time should be
        [&[0x92u8, 0x92, 0xa1, b'x'][..], &META_A, &RECORD].concat(),
    ];
    for entry in cases {
        let bytes = forward(entry.clone());
        assert!(
            matches!(decode_one(&bytes), Err(FrameError::BadTime(_))),
            "{entry:x?}: {:?}",
            decode_one(&bytes)
        );
        let lenient = DecodeOptions {
            skip_invalid_event: true,
            ..Default::default()
        };
        match decode_with(lenient, &bytes).unwrap() {
            Frame::Events(ev) => {
                assert!(ev.events.is_empty());
                assert_eq!(ev.skipped, 1);
            }
            other => panic!("{other:?}"),
        }
    }
}
