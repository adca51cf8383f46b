//! An artifact directory others may write (here 0777, as one someone else made under a shared
//! `/tmp` could be) is refused: nothing is written there, and a violating span is still
//! exported with its breakdown, saying why it has no timeline.
//!
//! Pins: the directory store followed whatever was at the artifact's path and accepted any
//! directory; a store that could not be created left spans without a link and without a reason.

#[path = "support/composed.rs"]
mod composed;
#[path = "support/in_memory.rs"]
mod in_memory;

use std::os::unix::fs::PermissionsExt;

use granular::{ArtifactSink, Config, SloRules};

#[test]
fn a_shared_artifact_directory_is_refused_and_spans_say_why() {
    let dir = std::env::temp_dir().join(format!("granular-shared-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cfg = Config {
        slo: SloRules::parse("GET /slow=5ms,*=10s").unwrap(),
        artifacts: ArtifactSink::Dir(dir.clone()),
        ..Config::default()
    };
    let sources = granular::install_recorder(&cfg);
    let (exporter, provider) = in_memory::install(cfg, &sources);
    let attr = in_memory::sleep_spans(&exporter, &provider, &["GET /slow"]);
    let attr = |key: &str| attr("GET /slow", key);
    assert_eq!(
        attr("granular.cause").as_deref(),
        Some("idle"),
        "the breakdown is there"
    );
    assert_eq!(attr("granular.artifact"), None);
    assert_eq!(
        attr("granular.artifact.skipped").as_deref(),
        Some("store_error")
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing written in the refused directory"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
