//! [`Names`]: the names nodes were given (`addnode first`), so that commands can use them
//! wherever they take a node.

use std::collections::BTreeMap;

use raft_core::NodeId;

use crate::suggest::closest;

/// Words the scenario language uses where a node may stand, so no node may be called so.
const RESERVED: [&str; 12] =
    ["all", "as", "at", "full", "leader", "logs", "messages", "no", "none", "on", "op", "to"];

/// The names of a scenario's nodes: `addnode first` gives the new node the name `first`, and
/// every later command may say `first` for its id.
///
/// ```
/// use testkit::Session;
/// let mut session = Session::new();
/// session.run_line("addnode first").unwrap();
/// let names = session.names();
/// assert_eq!((names.id("first"), names.name(1)), (Some(1), Some("first")));
/// assert_eq!(names.show(1), "1 (first)");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    by_name: BTreeMap<String, NodeId>,
    by_id: BTreeMap<NodeId, String>,
}

impl Names {
    /// The node called `name`.
    pub fn id(&self, name: &str) -> Option<NodeId> {
        self.by_name.get(name).copied()
    }

    /// The name of node `id`.
    pub fn name(&self, id: NodeId) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }

    /// Every named node, by id.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &str)> {
        self.by_id.iter().map(|(&id, name)| (id, name.as_str()))
    }

    /// Whether no node has a name.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// How a command refers to node `id`: its name, or else its id.
    pub fn of(&self, id: NodeId) -> String {
        self.name(id).map_or_else(|| id.to_string(), str::to_string)
    }

    /// Node `id` for people: `1 (first)`, or `1` without a name.
    pub fn show(&self, id: NodeId) -> String {
        match self.name(id) {
            Some(name) => format!("{id} ({name})"),
            None => id.to_string(),
        }
    }

    /// Why `name` cannot name a node, if it cannot: it is a word the language uses where a
    /// node may stand.
    pub fn check(name: &str) -> Result<(), String> {
        if RESERVED.contains(&name) {
            return Err(format!(
                "`{name}` cannot name a node: the scenario language uses it where a node may stand"
            ));
        }
        Ok(())
    }

    /// Names node `id`.
    pub(crate) fn insert(&mut self, id: NodeId, name: &str) -> Result<(), String> {
        Names::check(name)?;
        match self.id(name) {
            Some(other) if other != id => return Err(format!("node {other} is already called `{name}`")),
            _ => {}
        }
        if let Some(old) = self.by_id.insert(id, name.to_string()) {
            self.by_name.remove(&old);
        }
        self.by_name.insert(name.to_string(), id);
        Ok(())
    }

    /// The error for a word that names no node, with the closest name if one is near.
    pub(crate) fn unknown(&self, word: &str) -> String {
        match closest(word, self.by_name.keys().map(String::as_str)) {
            Some(name) => format!("no node is called `{word}`; did you mean `{name}`?"),
            None if self.is_empty() => format!("expected a node, found `{word}`"),
            None => {
                let names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
                format!("no node is called `{word}` (the names are {})", names.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_not_keywords() {
        let mut names = Names::default();
        names.insert(1, "first").unwrap();
        names.insert(2, "second").unwrap();
        assert_eq!(names.insert(3, "first").unwrap_err(), "node 1 is already called `first`");
        assert!(names.insert(3, "leader").unwrap_err().contains("cannot name a node"));
        names.insert(1, "one").unwrap();
        assert_eq!(
            (names.id("first"), names.id("one"), names.of(2), names.of(7)),
            (None, Some(1), "second".into(), "7".into())
        );
    }

    #[test]
    fn an_unknown_name_suggests_a_known_one() {
        let mut names = Names::default();
        assert_eq!(names.unknown("first"), "expected a node, found `first`");
        names.insert(1, "first").unwrap();
        assert_eq!(names.unknown("frist"), "no node is called `frist`; did you mean `first`?");
        assert_eq!(names.unknown("zebra"), "no node is called `zebra` (the names are first)");
    }
}
