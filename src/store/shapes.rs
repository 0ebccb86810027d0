//! Few statement shapes for `IN (...)` lists: a list is a different prepared
//! statement for every length, and each connection caches its own (on SQLite they
//! live in this process), so lists of every length from 1 to 500 fill the statement
//! cache with hundreds of statements and miss it anyway. Padding a list to a power
//! of two leaves about ten shapes. (Batch writes take their rows as one JSON
//! parameter instead: see `json_rows`.)
//!
//! Invariant: a padded list holds the same distinct values as the input (padding
//! repeats the last one).

/// Longest list that is padded.
pub const MAX: usize = 256;

/// `values` padded to the next power of two (at most [`MAX`] when it is shorter)
/// by repeating its last value, for an `IN (...)` list; longer lists come back as
/// they are.
pub fn padded<T: Clone>(mut values: Vec<T>) -> Vec<T> {
    let Some(last) = values.last().cloned() else {
        return values;
    };
    let want = values.len().next_power_of_two();
    if values.len() <= MAX {
        values.resize(want, last);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_keeps_the_values_and_reaches_a_power_of_two() {
        assert_eq!(padded(vec![1, 2, 3]), [1, 2, 3, 3]);
        assert_eq!(padded(vec![5]), [5]);
        assert!(padded(Vec::<u8>::new()).is_empty());
        assert_eq!(padded((0..300).collect::<Vec<_>>()).len(), 300);
        assert_eq!(padded((0..200).collect::<Vec<_>>()).len(), 256);
    }
}
