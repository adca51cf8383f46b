//! Time ranges: `(start, end)` pairs of Unix nanoseconds, and the set operations the analysis
//! does on lists of them.
//!
//! In: ranges in any order ([`merge`]), or lists already sorted and disjoint (what [`merge`]
//! returns). Out: sorted, disjoint lists again, or an amount of time. Each operation walks its
//! lists once, or binary-searches them: a saturated window holds thousands of ranges, and a
//! breakdown runs several of these per span.

/// Sorts and merges overlapping (and touching) ranges.
pub(crate) fn merge(mut r: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    r.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(r.len());
    for (a, b) in r {
        match out.last_mut() {
            Some(l) if a <= l.1 => l.1 = l.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `ranges` minus `covered` (both sorted and disjoint), in one pass over both.
pub(crate) fn subtract(ranges: &[(u64, u64)], covered: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut c = 0;
    for &(a, b) in ranges {
        let mut at = a;
        while c < covered.len() && covered[c].1 <= at {
            c += 1;
        }
        let mut k = c;
        while k < covered.len() && covered[k].0 < b {
            let (x, y) = covered[k];
            if x > at {
                out.push((at, x));
            }
            at = at.max(y);
            if at >= b {
                break;
            }
            k += 1;
        }
        if at < b {
            out.push((at, b));
        }
    }
    out
}

/// The parts of `ranges` inside `within` (both sorted and disjoint).
pub(crate) fn intersect(ranges: &[(u64, u64)], within: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut i, mut k) = (0, 0);
    while i < ranges.len() && k < within.len() {
        let (a, b) = (ranges[i].0.max(within[k].0), ranges[i].1.min(within[k].1));
        if a < b {
            out.push((a, b));
        }
        if ranges[i].1 < within[k].1 {
            i += 1;
        } else {
            k += 1;
        }
    }
    out
}

/// How much of `[a, b]` the sorted, disjoint `ranges` cover, ns. Only the ranges from the
/// first that ends after `a` up to the first that starts at `b` are looked at, so asking for
/// many short ranges against a long list costs a binary search each, not a pass over the list.
pub(crate) fn overlap(ranges: &[(u64, u64)], a: u64, b: u64) -> u64 {
    let from = ranges.partition_point(|&(_, y)| y <= a);
    ranges[from..]
        .iter()
        .take_while(|&&(x, _)| x < b)
        .map(|&(x, y)| b.min(y).saturating_sub(a.max(x)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_and_intersect_cut_ranges_exactly() {
        let ranges = [(0, 10), (20, 30), (40, 50)];
        let covered = [(5, 22), (25, 26), (45, 60)];
        assert_eq!(
            subtract(&ranges, &covered),
            vec![(0, 5), (22, 25), (26, 30), (40, 45)]
        );
        assert_eq!(
            intersect(&ranges, &covered),
            vec![(5, 10), (20, 22), (25, 26), (45, 50)]
        );
        assert_eq!(subtract(&ranges, &[]), ranges.to_vec());
        assert_eq!(subtract(&ranges, &[(0, 100)]), vec![]);
    }

    #[test]
    fn overlap_sums_only_what_falls_inside() {
        let ranges = [(0, 10), (20, 30), (40, 50)];
        assert_eq!(overlap(&ranges, 5, 45), 5 + 10 + 5);
        assert_eq!(overlap(&ranges, 10, 20), 0, "touching is not overlapping");
        assert_eq!(overlap(&ranges, 60, 70), 0);
        assert_eq!(overlap(&[], 0, 10), 0);
    }
}
