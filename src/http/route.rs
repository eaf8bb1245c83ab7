//! Route tables, compiled at load: an exact `path` first, then the longest
//! `pathPrefix` that matches whole segments.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::model::PathMatch;

/// One host entry's routes, resolved to their targets.
#[derive(Debug)]
pub struct RouteTable<T> {
    exact: HashMap<String, Arc<T>>,
    /// Longest prefix first.
    prefixes: Vec<(String, Arc<T>)>,
}

impl<T> RouteTable<T> {
    /// Builds the table from each route's matcher and target, in file
    /// order.
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a PathMatch, Arc<T>)>) -> Self {
        let mut exact = HashMap::new();
        let mut prefixes = Vec::new();
        for (matcher, t) in routes {
            match matcher {
                PathMatch::Exact(p) => {
                    exact.entry(p.clone()).or_insert(t);
                }
                // `/admin/` and `/admin` are one prefix (as Kubernetes'
                // `Prefix` has it): otherwise `/admin` itself would fall to
                // a shorter route and escape `/admin/`'s `allow`.
                PathMatch::Prefix(p) => {
                    let p = match p.strip_suffix('/') {
                        Some(bare) if !bare.is_empty() => bare,
                        _ => p.as_str(),
                    };
                    prefixes.push((p.to_string(), t));
                }
            }
        }
        // Stable sort: among equal lengths the first in the file wins.
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        RouteTable { exact, prefixes }
    }

    /// The target for `path`.
    pub fn find(&self, path: &str) -> Option<&Arc<T>> {
        if let Some(t) = self.exact.get(path) {
            return Some(t);
        }
        self.prefixes
            .iter()
            .find(|(p, _)| prefix_matches(p, path))
            .map(|(_, t)| t)
    }
}

/// SPEC §2: `/api` matches `/api`, `/api/`, `/api/x`, not `/apix`.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable<&'static str> {
        let routes = [
            (PathMatch::Prefix("/".into()), "root"),
            (PathMatch::Prefix("/api".into()), "api"),
            (PathMatch::Prefix("/admin/".into()), "admin"),
            (PathMatch::Exact("/api/health".into()), "health"),
        ];
        RouteTable::new(routes.iter().map(|(m, t)| (m, Arc::new(*t))))
    }

    #[test]
    fn exact_then_longest_whole_segment_prefix() {
        let t = table();
        let f = |p: &str| t.find(p).map(|a| **a);
        assert_eq!(f("/api/health"), Some("health"));
        assert_eq!(f("/api/health/x"), Some("api"));
        assert_eq!(f("/api"), Some("api"));
        assert_eq!(f("/api/"), Some("api"));
        assert_eq!(f("/apix"), Some("root"));
        assert_eq!(f("/admin/x"), Some("admin"));
        assert_eq!(f("/admin"), Some("admin"), "/admin/ covers /admin itself");
        assert_eq!(f("/adminx"), Some("root"));
    }

    #[test]
    fn no_route_without_a_matching_prefix() {
        let m = PathMatch::Prefix("/api".into());
        let t: RouteTable<()> = RouteTable::new([(&m, Arc::new(()))]);
        assert!(t.find("/").is_none());
        assert!(t.find("/apix").is_none());
    }
}
