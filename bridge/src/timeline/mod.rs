//! The runtime timeline of a slow span's window, in a format a stock viewer opens: the model
//! and its encoder. The artifact Granular links from the span is one such timeline
//! (built in [`crate::analyzer::artifacts`]).
//!
//! Producers build a [`Timeline`] (viewer-independent, Unix-epoch nanoseconds) and render it
//! with [`encode_perfetto`], whose output opens at <https://ui.perfetto.dev> ("Open trace
//! file"). See [`perfetto`] for exactly what the trace contains.

mod model;
pub(crate) mod perfetto;

pub use model::{Flow, Instant, Slice, SliceRef, Timeline, Track, TrackKind};
pub use perfetto::encode as encode_perfetto;
