//! Artifacts attached to slow spans: the runtime timeline of the span's
//! window, in a format a stock viewer opens.
//!
//! Producers build a [`Timeline`] (viewer-independent, Unix-epoch
//! nanoseconds) and render it with [`encode_perfetto`], whose output opens at
//! <https://ui.perfetto.dev> ("Open trace file"). See [`perfetto`] for exactly
//! what the trace contains.

pub mod perfetto;
mod timeline;

pub use perfetto::encode as encode_perfetto;
pub use timeline::{Flow, Instant, Slice, SliceRef, Timeline, Track, TrackKind};
