//! Stream partitions: a hot stream split into `N` Redis streams `<stream>:<n>`
//! (n = 0..N-1), each with its own `{<stream>:<n>}` companions, so that on a Redis
//! Cluster each partition can live in its own slot.
//!
//! The rule, fixed here and nowhere else:
//! - `N = 1` (the default) is no partitioning at all: the stream keeps its plain key,
//!   no `:0` suffix.
//! - An event goes to partition `fnv1a64(v) mod N`, where `v` is the value of its
//!   type's ordering key (see [`crate::Catalog::ordering_key`]): the bytes of a
//!   string value, the JSON text of any other value. An event without one (its type
//!   declares no key, or the payload lacks the field) is spread by its event id.
//!   So every event of one key lands in one partition, in publish order.
//! - FNV-1a is written out here (not std's `DefaultHasher`, which may change
//!   between Rust releases): the partition of a key must never move while `N` stays.
//!
//! Invariants: `1 <= N <=` [`MAX_PARTITIONS`]; a partitioned stream's own name does
//! not end in `:<digits>`, so a partition name parses back to one stream.

/// The most partitions one stream may have.
pub const MAX_PARTITIONS: u32 = 1024;

/// The 64-bit FNV-1a hash of `bytes` (offset basis `0xcbf29ce484222325`, prime
/// `0x100000001b3`), stable across platforms and releases.
///
/// ```
/// use strategist_actors::partition::fnv1a64;
/// assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
/// assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
/// ```
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// How many workers each partition's router runs when its stream's pool asks for
/// `workers` in all: the count divided among the `n` routers, rounded up, at least
/// one each. A pool's `workers` (and the scaler's count) mean the same on a split
/// stream as on a whole one, instead of `n` times as many.
///
/// ```
/// use strategist_actors::partition::workers_per_partition;
/// assert_eq!(workers_per_partition(8, 1), 8);
/// assert_eq!(workers_per_partition(8, 4), 2);
/// assert_eq!(workers_per_partition(3, 4), 1);
/// assert_eq!(workers_per_partition(10, 4), 3);
/// ```
pub fn workers_per_partition(workers: usize, n: u32) -> usize {
    workers.div_ceil((n as usize).max(1)).max(1)
}

/// The partition (0..n) of a key's bytes among `n` partitions (0 when `n <= 1`).
///
/// ```
/// use strategist_actors::partition::partition_of;
/// let p = partition_of(b"user-42", 4);
/// assert!(p < 4);
/// assert_eq!(p, partition_of(b"user-42", 4)); // stable
/// assert_eq!(partition_of(b"user-42", 1), 0);
/// ```
pub fn partition_of(key: &[u8], n: u32) -> u32 {
    if n <= 1 {
        return 0;
    }
    (fnv1a64(key) % u64::from(n)) as u32
}

/// The stream name of partition `n` of `stream` (without prefix): `<stream>:<n>`.
pub fn partition_name(stream: &str, n: u32) -> String {
    format!("{stream}:{n}")
}

/// Splits `<stream>:<n>` into the stream and `n`; `None` for a name that does not
/// end in `:<digits>`.
pub fn split_name(name: &str) -> Option<(&str, u32)> {
    let (stream, n) = name.rsplit_once(':')?;
    if stream.is_empty() || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stream, n.parse().ok()?))
}

/// Why a partition setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// `partitions` is 0 or above [`MAX_PARTITIONS`].
    #[error("stream `{stream}`: partitions = {n} is out of range (1 to {MAX_PARTITIONS})")]
    OutOfRange {
        /// The stream.
        stream: String,
        /// The count asked for.
        n: u64,
    },
    /// A partitioned stream's name already looks like a partition's.
    #[error(
        "stream `{stream}`: a partitioned stream's name must not end in `:<digits>` (its partitions are named `{stream}:<n>`)"
    )]
    AmbiguousName {
        /// The stream.
        stream: String,
    },
}

/// Checks one stream's partition count.
///
/// ```
/// use strategist_actors::partition::check;
/// assert!(check("user.events", 4).is_ok());
/// assert!(check("user.events", 0).is_err());
/// assert!(check("user.events", 2000).is_err());
/// assert!(check("user.events:1", 4).is_err());
/// assert!(check("user.events:1", 1).is_ok()); // not partitioned: any name
/// ```
pub fn check(stream: &str, n: u64) -> Result<(), PartitionError> {
    if n == 0 || n > u64::from(MAX_PARTITIONS) {
        return Err(PartitionError::OutOfRange {
            stream: stream.to_owned(),
            n,
        });
    }
    if n > 1 && split_name(stream).is_some() {
        return Err(PartitionError::AmbiguousName {
            stream: stream.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV reference test suite (64-bit FNV-1a).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn keys_spread_and_stay_put() {
        let mut seen = [0u32; 4];
        for i in 0..1000 {
            let k = format!("user-{i}");
            let p = partition_of(k.as_bytes(), 4);
            assert_eq!(p, partition_of(k.as_bytes(), 4));
            seen[p as usize] += 1;
        }
        // 1000 keys over 4 partitions: each gets a fair share.
        assert!(seen.iter().all(|&n| n > 150), "{seen:?}");
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(partition_name("a.events", 3), "a.events:3");
        assert_eq!(split_name("a.events:3"), Some(("a.events", 3)));
        assert_eq!(split_name("a.events"), None);
        assert_eq!(split_name("a.events:x1"), None);
        assert_eq!(split_name(":1"), None);
    }
}
