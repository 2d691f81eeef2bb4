//! Unit tests of `agreements`.

use std::path::Path;

use super::*;
use crate::config::PolicySettings;

fn dir_with(files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tideway-agreements-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

fn settings(dir: &Path) -> PolicySettings {
    PolicySettings { agreements_dir: Some(dir.to_owned()), ..PolicySettings::default() }
}

#[tokio::test]
async fn a_directory_of_agreements_loads_and_a_bad_file_stops_the_start_naming_its_line() {
    let store = crate::store::memory::MemoryStore::default();
    let good = tideway_policy::agreement::EXAMPLES[2].1;
    let dir = dir_with(&[("podiatry.toml", good), ("README.txt", "not an agreement")]);
    let policy = load(&settings(&dir), &[], &store).await.unwrap();
    assert_eq!(policy.current().agreements().len(), 1);
    std::fs::write(
        dir.join("zz-bad.toml"),
        good.replace("id = \"podiatry\"", "id = \"other\"").replace("\"R8003\"", "\"nurse\""),
    )
    .unwrap();
    let err = load(&settings(&dir), &[], &store).await.unwrap_err().to_string();
    assert!(err.contains("zz-bad.toml:") && err.contains("recipients.roles"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    let err = load(&settings(&dir_with(&[])), &[], &store).await.unwrap_err().to_string();
    assert!(err.contains("no sharing agreement"), "{err}");
    let missing = load(&settings(Path::new("/nonexistent/agreements")), &[], &store).await;
    assert!(missing.is_err());
}

fn ods(code: &str) -> OdsCode {
    OdsCode::parse(code).unwrap()
}

fn published(version: i64, body: String) -> PublishedVersion {
    PublishedVersion {
        agreement_id: "podiatry".into(),
        version,
        body,
        published_by: "c/u".into(),
        published_org: "LBX01".into(),
        published_at_us: 0,
    }
}

fn approval(version: i64, ods: &str) -> Approval {
    Approval {
        agreement_id: "podiatry".into(),
        version,
        ods_code: ods.into(),
        user_id: "u".into(),
        approved_at_us: 0,
    }
}

fn podiatry_version(p: &PolicyInForce) -> u32 {
    p.latest().agreements().iter().find(|a| a.id == "podiatry").unwrap().version
}

#[tokio::test]
async fn a_published_version_applies_only_once_every_controller_has_approved_it() {
    let policy = PolicyInForce::examples(vec![
        ("a".into(), ods("LBX01")),
        ("b".into(), ods("LBX02")),
        ("c".into(), ods("LBX02")),
    ])
    .unwrap();
    let store = crate::store::memory::MemoryStore::default();
    let v2 = tideway_policy::agreement::EXAMPLES[2].1.replace("version = 1", "version = 2");
    assert!(store.publish_agreement(&published(2, v2)).await.unwrap());
    assert!(!policy.refresh(&store).await.unwrap());
    let ledger = policy.ledger(&store.published_agreements().await.unwrap(), &[]).unwrap();
    let v2 = ledger.iter().find(|e| e.agreement.label() == "podiatry@2").unwrap();
    assert_eq!(v2.state, VersionState::AwaitingApproval);
    assert_eq!(v2.awaiting(), ["LBX01", "LBX02"], "each controller once, for controllers = [\"*\"]");
    store.approve_agreement(&approval(2, "LBX01")).await.unwrap();
    assert!(!policy.refresh(&store).await.unwrap());
    assert_eq!(podiatry_version(&policy), 1, "the previous version stays in force");
    // A request that started before the last approval keeps its snapshot.
    let pinned = policy.pinned(async {
        store.approve_agreement(&approval(2, "LBX02")).await.unwrap();
        assert!(policy.refresh(&store).await.unwrap());
        policy.current().agreements().iter().find(|a| a.id == "podiatry").unwrap().version
    });
    assert_eq!(pinned.await, 1);
    assert_eq!(podiatry_version(&policy), 2);
    let ledger = policy
        .ledger(&store.published_agreements().await.unwrap(), &store.agreement_approvals().await.unwrap())
        .unwrap();
    let states: Vec<_> =
        ledger.iter().filter(|e| e.agreement.id == "podiatry").map(|e| e.state.code()).collect();
    assert_eq!(states, ["superseded", "in-force"]);
    // A version naming fewer controllers needs those it drops too: LBX02 cannot be cut out of
    // podiatry by LBX01 alone.
    let narrower = tideway_policy::agreement::EXAMPLES[2]
        .1
        .replace("version = 1", "version = 3")
        .replace("controllers = [\"*\"]", "controllers = [\"LBX01\"]");
    assert!(narrower.contains("controllers = [\"LBX01\"]"), "the example names every controller");
    store.publish_agreement(&published(3, narrower)).await.unwrap();
    store.approve_agreement(&approval(3, "LBX01")).await.unwrap();
    assert!(!policy.refresh(&store).await.unwrap());
    let ledger = policy
        .ledger(&store.published_agreements().await.unwrap(), &store.agreement_approvals().await.unwrap())
        .unwrap();
    let v3 = ledger.iter().find(|e| e.agreement.label() == "podiatry@3").unwrap();
    assert_eq!(v3.awaiting(), ["LBX02"]);
    store.approve_agreement(&approval(3, "LBX02")).await.unwrap();
    assert!(policy.refresh(&store).await.unwrap());
    assert_eq!(podiatry_version(&policy), 3);
    // A stored version that no longer validates is named.
    store.publish_agreement(&published(4, "id = \"podiatry\"\nversion = 4\n".into())).await.unwrap();
    let err = policy.refresh(&store).await.unwrap_err().to_string();
    assert!(err.starts_with("podiatry@4 (published):"), "{err}");
    assert_eq!(podiatry_version(&policy), 3, "the policy in force is kept");
}
