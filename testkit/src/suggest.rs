//! "Did you mean …?": the known name closest to a mistyped one — of a command, a node, an
//! option — for the scenario parser's errors and the REPL's.

/// The candidate closest to `word`: the only one it is a prefix of, or else the nearest by
/// edit distance if that is small for the word's length (at most one edit in three letters).
///
/// ```
/// assert_eq!(testkit::closest("partiton", ["partition", "put"]), Some("partition"));
/// assert_eq!(testkit::closest("frobnicate", ["partition", "put"]), None);
/// ```
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    let mut prefixed = candidates.iter().filter(|c| c.starts_with(word));
    if let (Some(only), None) = (prefixed.next(), prefixed.next()) {
        return Some(only);
    }
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, c)| (d, c.len()))
        .map(|(_, c)| c)
}

/// Levenshtein distance, counting an exchange of neighbouring letters as one edit.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // rows[i][j]: the distance between a[..i] and b[..j]; three rows are enough.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let substitution = previous[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            current[j] = substitution.min(previous[j] + 1).min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = current[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 6] = ["partition", "put", "pushpayload", "status", "disconnect", "drop"];

    #[test]
    fn typos_find_the_intended_name() {
        assert_eq!(closest("partiton", NAMES), Some("partition"));
        assert_eq!(closest("stauts", NAMES), Some("status"));
        assert_eq!(closest("disconect", NAMES), Some("disconnect"));
        assert_eq!(closest("pushp", NAMES), Some("pushpayload"));
        assert_eq!(closest("pt", NAMES), Some("put"));
    }

    #[test]
    fn unrelated_words_find_nothing() {
        assert_eq!(closest("frobnicate", NAMES), None);
        assert_eq!(closest("p", NAMES), None, "a prefix of several names is ambiguous, and far from all");
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("ab", "ba"), 1);
        assert_eq!(distance("same", "same"), 0);
    }
}
