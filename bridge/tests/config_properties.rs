//! The `GRANULAR_*` parser under arbitrary input: whatever the environment holds, reading it
//! never panics, every bad value comes back as an error naming its variable, its value, what
//! was expected and what is used instead, the strict policy fails on exactly the first error
//! the lenient one reports, and the variables read are the ones the README documents.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use granular::Config;
use proptest::prelude::*;

/// The `GRANULAR_*` variables of the README's configuration table.
fn documented() -> BTreeSet<String> {
    let readme = include_str!("../../README.md");
    readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `GRANULAR_"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| format!("GRANULAR_{name}"))
        .collect()
}

/// The variables the parser asks for, in the order it asks.
fn read_by_parser() -> Vec<String> {
    let asked = RefCell::new(Vec::new());
    let _ = Config::from_lookup_lenient(|k| {
        asked.borrow_mut().push(k.to_string());
        None
    });
    asked.into_inner()
}

#[test]
fn the_parser_reads_every_documented_variable_and_no_other() {
    let read: BTreeSet<String> = read_by_parser()
        .into_iter()
        .filter(|k| k.starts_with("GRANULAR_"))
        .collect();
    let documented = documented();
    assert!(
        documented.len() >= 20,
        "README table not found: {documented:?}"
    );
    assert_eq!(
        read.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "read but not in README's table"
    );
    assert_eq!(
        documented.difference(&read).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in README's table but never read"
    );
}

/// Values shaped like what people set, and plain garbage.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{0,25}",
        "-?[0-9]{1,6}(\\.[0-9]{0,4})?(ns|us|µs|ms|s|m|h|MiB|KiB|%)?",
        "(true|false|TRUE|yes|0|1|on|off| true |)",
        "(all|violations|dir|otlp|none|off|auto|full|light|grpc|http/protobuf|gzip|zstd)",
        "[*a-zA-Z /{}:_.-]{0,12}=[0-9a-z.]{0,6}(,[*a-zA-Z /]{0,8}=[0-9a-z]{0,5}){0,3}",
        "(https?|ftp|file)://[a-z0-9.:/\\[\\]@%?#-]{0,30}",
        "\\PC{0,3}[\\u{0}-\\u{1f}\\u{7f}-\\u{10ffff}]{0,4}",
    ]
}

proptest! {
    #[test]
    fn any_environment_is_read_without_panic_and_every_error_names_its_variable(
        picks in proptest::collection::vec((any::<prop::sample::Index>(), value()), 0..12)
    ) {
        let vars = read_by_parser();
        let env: BTreeMap<String, String> = picks
            .into_iter()
            .map(|(i, v)| (i.get(&vars).clone(), v))
            .collect();
        let (_, errors) = Config::from_lookup_lenient(|k| env.get(k).cloned());
        for e in &errors {
            let set = env.get(&e.variable);
            prop_assert!(set.is_some(), "error for a variable not set: {e:?}");
            prop_assert_eq!(Some(&e.value), set, "the value as set");
            prop_assert!(!e.problem.trim().is_empty(), "no problem stated: {:?}", e);
            prop_assert!(!e.using.trim().is_empty(), "no fallback stated: {:?}", e);
            let shown = e.to_string();
            prop_assert!(shown.starts_with(&e.variable), "{}", shown);
        }
        let strict = Config::from_lookup(|k| env.get(k).cloned());
        match (strict, errors.first()) {
            (Ok(_), None) => {}
            (Err(e), Some(first)) => prop_assert_eq!(&e, first),
            (strict, first) => prop_assert!(
                false,
                "strict {:?} disagrees with lenient's first error {:?}",
                strict.map(|_| ()),
                first
            ),
        }
    }
}
