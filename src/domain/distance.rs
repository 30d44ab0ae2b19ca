//! Edit distance, the one implementation: FAQ typo correction compares
//! analyzed tokens with it, the reply-extraction evaluation compares texts.

/// Rows up to this length live on the stack: typo correction calls this for
/// every unknown word against every known word with the same first letter,
/// and must not allocate each time.
const STACK: usize = 64;

/// The optimal-string-alignment distance between `a` and `b`: insertions,
/// deletions, substitutions and swaps of two adjacent elements, each costing
/// one. The exact distance when it is at most `max`; otherwise some value
/// above `max` (the search stops as soon as the distance must exceed it, so
/// it costs little on words that are far apart).
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T], max: usize) -> usize {
    let over = max.saturating_add(1);
    if a.len().abs_diff(b.len()) > max {
        return over;
    }
    if b.len() < STACK {
        let mut rows = [[0usize; STACK]; 3];
        let [r0, r1, r2] = &mut rows;
        osa(a, b, max, [&mut r0[..], &mut r1[..], &mut r2[..]])
    } else {
        let mut rows = vec![vec![0usize; b.len() + 1]; 3];
        let [r0, r1, r2] = &mut rows[..] else {
            return over;
        };
        osa(a, b, max, [&mut r0[..], &mut r1[..], &mut r2[..]])
    }
}

/// The dynamic programme over three rows (two back, previous, current),
/// each at least `b.len() + 1` long.
fn osa<T: PartialEq>(a: &[T], b: &[T], max: usize, rows: [&mut [usize]; 3]) -> usize {
    let [mut prev2, mut prev, mut cur] = rows;
    for (j, cell) in prev.iter_mut().enumerate().take(b.len() + 1) {
        *cell = j;
    }
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
            row_min = row_min.min(v);
        }
        if row_min > max {
            return max.saturating_add(1);
        }
        // Rotate: two-back ← previous ← current ← (reused) two-back.
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(a: &str, b: &str, max: usize) -> usize {
        edit_distance(a.as_bytes(), b.as_bytes(), max)
    }

    #[test]
    fn typos() {
        assert_eq!(d("downlaod", "download", 2), 1);
        assert_eq!(d("contry", "country", 2), 1);
        assert!(d("weather", "download", 2) > 2);
        assert_eq!(d("", "abc", 5), 3);
        assert_eq!(d("kitten", "sitting", 10), 3);
    }

    #[test]
    fn long_sequences_use_the_heap_path() {
        let a: Vec<char> = "x".repeat(100).chars().collect();
        let mut b = a.clone();
        b.swap(10, 11);
        b[50] = 'y';
        b.push('z');
        assert_eq!(edit_distance(&a, &a, usize::MAX), 0);
        assert_eq!(edit_distance(&a, &b, usize::MAX), 2);
        let c: Vec<char> = "ab".repeat(60).chars().collect();
        let e: Vec<char> = "ba".repeat(60).chars().collect();
        assert_eq!(edit_distance(&c, &e, 200), 2);
    }

    /// Plain Levenshtein, the textbook way: the bound of the OSA distance.
    fn levenshtein(a: &[u8], b: &[u8]) -> usize {
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.iter().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }

    proptest! {
        #[test]
        fn bounded_agrees_with_unbounded(a in "[abc]{0,12}", b in "[abc]{0,12}", max in 0usize..6) {
            let full = d(&a, &b, usize::MAX);
            let bounded = d(&a, &b, max);
            if full <= max {
                prop_assert_eq!(bounded, full);
            } else {
                prop_assert!(bounded > max);
            }
            prop_assert_eq!(full, d(&b, &a, usize::MAX));
            prop_assert!(full <= levenshtein(a.as_bytes(), b.as_bytes()));
            prop_assert!(full >= a.len().abs_diff(b.len()));
        }
    }
}
