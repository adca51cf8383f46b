//! Artifacts: the full runtime timeline of a slow span, in an open format.
