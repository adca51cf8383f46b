//! An artifact's title, read from its bytes: the process name the encoder writes
//! (`TracePacket.track_descriptor.process.process_name`, "GET /messages · trace 4bf9…"), in one
//! of the first packets. Anything unexpected yields `None`: the index then shows the file name.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;

/// The encoder writes the process descriptor second; a few packets suffice.
const PACKETS_LOOKED_AT: usize = 4;
/// Bytes read from the file's start at most.
const HEAD_BYTES: u64 = 64 * 1024;

/// The title of the artifact at `path`, if its first packets carry one.
pub(super) fn read(path: &Path) -> Option<String> {
    let mut head = Vec::new();
    File::open(path)
        .ok()?
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .ok()?;
    title(&head)
}

fn title(bytes: &[u8]) -> Option<String> {
    let mut trace = Fields(bytes);
    for _ in 0..PACKETS_LOOKED_AT {
        let (field, packet) = trace.next()?;
        if field != 1 {
            continue;
        }
        let Some(descriptor) = message(packet?, 60) else {
            continue;
        };
        if let Some(name) = message(descriptor, 3).and_then(|p| message(p, 6)) {
            return String::from_utf8(name.to_vec()).ok();
        }
    }
    None
}

/// The payload of the first length-delimited field `number` of `bytes`.
fn message(bytes: &[u8], number: u64) -> Option<&[u8]> {
    Fields(bytes).find_map(|(f, payload)| (f == number).then_some(payload).flatten())
}

/// The fields of a protobuf message: (number, payload when length-delimited); ends at the
/// first malformed byte.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = (u64, Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let key = self.varint()?;
        let payload = match key & 7 {
            0 => {
                self.varint()?;
                None
            }
            1 => {
                self.0 = self.0.get(8..)?;
                None
            }
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                let payload = self.0.get(..len)?;
                self.0 = &self.0[len..];
                Some(payload)
            }
            5 => {
                self.0 = self.0.get(4..)?;
                None
            }
            _ => return None,
        };
        Some((key >> 3, payload))
    }
}

impl Fields<'_> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &b) in self.0.iter().enumerate().take(10) {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use granular::__internal::timeline::{Timeline, encode_perfetto};

    #[test]
    fn reads_the_title_the_encoder_writes() {
        let timeline = Timeline {
            title: "GET /messages · trace 4bf9".into(),
            ..Timeline::default()
        };
        assert_eq!(
            title(&encode_perfetto(&timeline)).as_deref(),
            Some("GET /messages · trace 4bf9")
        );
    }

    #[test]
    fn anything_else_has_no_title() {
        assert_eq!(title(b""), None);
        assert_eq!(title(b"not a trace at all"), None);
        assert_eq!(title(&[0x0a, 0xff]), None);
    }
}
