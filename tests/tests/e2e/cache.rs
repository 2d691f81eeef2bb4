//! The per-source cache: single-flight on concurrent misses, invalidation, and nothing
//! requester-specific inside.

use std::sync::Arc;

use tideway_tests::{Options, TestApp};

fn fetches(app: &TestApp) -> Vec<u64> {
    app.simulators.iter().map(|s| s.hits().record_fetches).collect()
}

#[tokio::test]
async fn a_thousand_concurrent_identical_misses_cause_one_upstream_call_per_source() {
    let app = Arc::new(TestApp::spawn(Options::default()).await);
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    // One cold fetch tells how many upstream requests one record costs per source.
    let before = fetches(&app);
    let first = app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    assert_eq!(first.status, 200);
    let one: Vec<u64> = fetches(&app).iter().zip(&before).map(|(a, b)| a - b).collect();
    assert!(one.iter().filter(|n| **n > 0).count() >= 2, "several sources hold the patient: {one:?}");
    // Warm: nothing goes upstream.
    let warm_before = fetches(&app);
    assert_eq!(app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await.status, 200);
    assert_eq!(fetches(&app), warm_before, "a warm cache asks no source");

    // Drop the patient from the cache, then fire 1,000 identical requests at once.
    app.state.records.federation().cache().invalidate_patient(&id);
    let before = fetches(&app);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let app = app.clone();
        let token = token.clone();
        let path = format!("/Patient/{id}/$everything");
        tasks.push(tokio::spawn(async move { app.get(&path, Some(&token)).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let after: Vec<u64> = fetches(&app).iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(after, one, "1,000 concurrent misses must cost exactly one upstream fetch per source");

    // Every one of those requests was audited twice (group-committed, none lost).
    use sqlx::Connection;
    let path = app.sqlite_path.clone().unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let (intents, outcomes): (i64, i64) = sqlx::query_as(
        "SELECT SUM(phase = 'intent'), SUM(phase = 'outcome') FROM audit_event WHERE action = 'patient-everything'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((intents, outcomes), (1002, 1002));
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT seq) FROM audit_event")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows, distinct);
}

#[tokio::test]
async fn invalidation_sends_the_next_read_to_the_sources() {
    let app = TestApp::spawn(Options::default()).await;
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(2)[1].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    let other = app.patient_id(&token, app.population.patients_in_several_boroughs(1)[0].as_str()).await;
    app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    app.get(&format!("/Patient/{other}/$everything"), Some(&token)).await;
    let before = fetches(&app);
    app.state.records.federation().cache().invalidate_patient(&id);
    // The other patient stays cached.
    app.get(&format!("/Patient/{other}/$everything"), Some(&token)).await;
    assert_eq!(fetches(&app), before);
    app.get(&format!("/Patient/{id}/$everything"), Some(&token)).await;
    assert!(fetches(&app).iter().sum::<u64>() > before.iter().sum::<u64>());
}

/// A cached record lives `cache.ttl_secs`: within it a read asks no source; once it has passed,
/// the next read asks the sources again, so a source's record is never shown from the cache
/// for longer than that bound.
#[tokio::test]
async fn a_cached_record_is_fetched_again_once_its_time_to_live_has_passed() {
    let app = TestApp::spawn(Options::default()).await;
    let mut settings = app.settings.clone();
    settings.cache.ttl_secs = 1;
    let replica = app.spawn_replica_with(settings).await;
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    let everything = format!("{}/Patient/{id}/$everything", replica.base_url);
    let before = fetches(&app);
    assert_eq!(app.get(&everything, Some(&token)).await.status, 200);
    let cold = fetches(&app);
    let holders: Vec<usize> = (0..cold.len()).filter(|b| cold[*b] > before[*b]).collect();
    assert!(holders.len() >= 2, "several sources hold the patient: {before:?} -> {cold:?}");
    assert_eq!(app.get(&everything, Some(&token)).await.status, 200);
    assert_eq!(fetches(&app), cold, "within its time to live the cache answers");

    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    assert_eq!(app.get(&everything, Some(&token)).await.status, 200);
    let after = fetches(&app);
    for b in holders {
        assert!(after[b] > cold[b], "source {b} is asked again once the entry has expired");
    }
    replica.handle.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn cached_answers_are_the_same_for_every_requester_until_policy_filters_them() {
    // The cache holds sources' answers only; what each requester receives is decided after it.
    // Two different users get the same bundle from one upstream fetch.
    let app = TestApp::spawn(Options::default()).await;
    let a = app.token().await;
    let b = app.token_for(&tideway_tests::other_clinician()).await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&a, &nhs).await;
    let ra = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&a)).await;
    let before = fetches(&app);
    let rb = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&b)).await;
    assert_eq!(fetches(&app), before);
    let ids = |r: &tideway_tests::Answer| r.matches().iter().map(|x| x["id"].to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&ra), ids(&rb));
}

async fn quota_holds(redis: bool) {
    let opts = Options { pages_per_principal: 3, redis_pages: redis, ..Options::default() };
    let app = TestApp::spawn(opts).await;
    let a = app.token().await;
    let b = app.token_for(&tideway_tests::other_clinician()).await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&a, &nhs).await;
    let path = format!("/Patient/{id}/$everything?_count=1");
    let b_link = app.get(&path, Some(&b)).await.next_link().expect("a next link for b");
    let mut a_links = Vec::new();
    for _ in 0..6 {
        a_links.push(app.get(&path, Some(&a)).await.next_link().expect("a next link for a"));
    }
    // Another user's searches never push out this user's link.
    assert_eq!(app.get(&b_link, Some(&b)).await.status, 200, "b's link survives a's searches");
    // The user's own oldest links go; the newest three stay.
    for (n, link) in a_links.iter().enumerate() {
        let status = app.get(link, Some(&a)).await.status;
        assert_eq!(status, if n < 3 { 410 } else { 200 }, "a's link {n}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_principals_many_searches_replace_only_their_own_page_links() {
    quota_holds(false).await;
}

#[tokio::test]
async fn the_page_quota_holds_in_redis_too() {
    quota_holds(true).await;
}
