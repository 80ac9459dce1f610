//! Fuzzes the Forward frame decoder: arbitrary bytes, fed whole and in chunks whose sizes
//! come from the first input byte. Must never panic, and chunking must not change the result.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use logship::forward::{DecodeOptions, ForwardDecoder, Frame, FrameError};

fn decode(chunks: &mut dyn Iterator<Item = &[u8]>, skip: bool) -> (Vec<Frame>, Option<FrameError>) {
    let mut dec = ForwardDecoder::new(DecodeOptions {
        max_frame_size: 1 << 20,
        max_depth: 64,
        max_decompressed_size: 4 << 20,
        skip_invalid_event: skip,
    });
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match dec.next_raw(&mut buf) {
                Ok(Some(raw)) => match dec.parse(raw) {
                    Ok(mut f) => {
                        // nil/0 times become "now": make them comparable
                        if let Frame::Events(ev) = &mut f {
                            for e in ev.events.iter_mut() {
                                e.time.nanos = 0;
                                e.time.secs = 0;
                            }
                        }
                        frames.push(f)
                    }
                    Err(e) => return (frames, Some(e)),
                },
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else {
        return;
    };
    let skip = ctl & 0x80 != 0;
    let step = (ctl & 0x7f) as usize + 1;
    let whole = decode(&mut std::iter::once(data), skip);
    let split = decode(&mut data.chunks(step), skip);
    assert_eq!(whole, split);
});
