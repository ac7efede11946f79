//! Manifest tests: round trips, and truncated, flipped and random manifests that must give an error
//! naming the file, never a panic.
