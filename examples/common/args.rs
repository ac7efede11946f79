//! `key=value` arguments for the examples.

/// The number given as `name=...` on the command line, or `default`.
pub fn number(name: &str, default: f64) -> f64 {
    std::env::args()
        .skip(1)
        .filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
        .unwrap_or(default)
}
