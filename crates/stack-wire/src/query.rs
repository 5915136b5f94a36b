//! Query strings of the engine's API (`?service=a&service=b&follow=1`), as
//! the server and the types that parse them read them.

/// `?all=1`, `?all=true`, `?all`.
pub fn query_flag(query: Option<&str>, name: &str) -> bool {
    query_values(query, name).any(|v| matches!(v, "1" | "true"))
}

/// Every value of a query parameter (`?service=a&service=b`); a bare
/// `?name` is `1`.
pub fn query_values<'a>(
    query: Option<&'a str>,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(move |kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, "1"));
            (k == name).then_some(v)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_flags() {
        assert!(query_flag(Some("all=1"), "all"));
        assert!(query_flag(Some("x=2&all=true"), "all"));
        assert!(query_flag(Some("all"), "all"));
        assert!(!query_flag(Some("all=0"), "all"));
        assert!(!query_flag(None, "all"));
        assert!(!query_flag(Some("tall=1"), "all"));
    }
}
