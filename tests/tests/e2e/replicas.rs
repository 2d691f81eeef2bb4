//! Several replicas behind a load balancer: shared PostgreSQL state and Redis page snapshots
//! (never skipped: if PostgreSQL or Redis is absent these tests fail).

use tideway_tests::{Options, StoreKind, TestApp};

#[tokio::test]
async fn a_page_link_from_one_replica_is_served_by_another_through_redis() {
    let app =
        TestApp::spawn(Options { store: StoreKind::Postgres, redis_pages: true, ..Options::default() }).await;
    let replica = app.spawn_replica().await;
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    let first = app.get(&format!("/Patient/{id}/$everything?_count=3"), Some(&token)).await;
    assert_eq!(first.status, 200);
    let next = first.next_link().expect("more than one page");
    // The load balancer sends the next request to the other replica.
    let elsewhere = next.replace(&app.base_url, &replica.base_url);
    assert_ne!(elsewhere, next);
    let second = app.get(&elsewhere, Some(&token)).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body["total"], first.body["total"]);
    let ids = |a: &tideway_tests::Answer| a.matches().iter().map(|r| r["id"].to_string()).collect::<Vec<_>>();
    assert!(ids(&second).iter().all(|i| !ids(&first).contains(i)), "page 2 continues page 1");
    // Still bound to its principal on every replica.
    let other = app.token_for(&tideway_tests::other_clinician()).await;
    assert_eq!(app.get(&elsewhere, Some(&other)).await.status, 403);
    // And the replica's token check, audit and record locator use the shared store.
    let read = app.get(&format!("{}/Patient/{id}", replica.base_url), Some(&token)).await;
    assert_eq!(read.status, 200, "a patient id published by one replica resolves on another");
    replica.handle.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn without_a_shared_page_store_another_replica_cannot_serve_the_page() {
    // The control for the test above: in-memory snapshots are local to a replica.
    let app = TestApp::spawn(Options { store: StoreKind::Postgres, ..Options::default() }).await;
    let replica = app.spawn_replica().await;
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    let first = app.get(&format!("/Patient/{id}/$everything?_count=3"), Some(&token)).await;
    let next = first.next_link().unwrap().replace(&app.base_url, &replica.base_url);
    assert_eq!(app.get(&next, Some(&token)).await.status, 410);
    replica.handle.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn a_dissent_recorded_on_one_replica_holds_on_another_at_once() {
    let app = TestApp::spawn(Options { store: StoreKind::Postgres, ..Options::default() }).await;
    let replica = app.spawn_replica().await;
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].clone();
    let id = app.patient_id(&token, nhs.as_str()).await;
    let elsewhere = format!("{}/Patient/{id}/$everything", replica.base_url);
    // The other replica has answered (and cached) the record before the dissent.
    assert!(app.get(&elsewhere, Some(&token)).await.released() > 0);
    let practice = app
        .token_for(&tideway_tests::user(&app.practice_of(&nhs), "R8000", tideway_auth::PurposeOfUse::Treat))
        .await;
    let dissent = serde_json::json!({
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{id}")},
        "provision": {"type": "deny"}
    });
    assert_eq!(app.send_json(reqwest::Method::POST, "/Consent", &practice, &dissent).await.status, 201);
    assert_eq!(
        app.get(&elsewhere, Some(&token)).await.released(),
        0,
        "the other replica honours it on the next request"
    );
    replica.handle.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn a_resource_one_replica_handed_out_can_be_read_by_id_on_another() {
    let app = TestApp::spawn(Options { store: StoreKind::Postgres, ..Options::default() }).await;
    let replica = app.spawn_replica().await;
    let token = app.token().await;
    let nhs = app.population.patients_in_several_boroughs(1)[0].as_str().to_owned();
    let id = app.patient_id(&token, &nhs).await;
    let all = app.get(&format!("/Patient/{id}/$everything?_count=1000"), Some(&token)).await;
    assert_eq!(all.status, 200);
    let condition =
        all.matches().into_iter().find(|r| r["resourceType"] == "Condition").expect("a Condition").clone();
    let path = format!("{}/Condition/{}", replica.base_url, condition["id"].as_str().unwrap());
    // The first replica shares what it fetched in the background: within moments the other
    // replica, which never fetched this record, reads the Condition through the same record.
    let mut read = app.get(&path, Some(&token)).await;
    for _ in 0..100 {
        if read.status == 200 {
            break;
        }
        assert_eq!(read.status, 404, "{}", read.body);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        read = app.get(&path, Some(&token)).await;
    }
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body, condition);
    replica.handle.stop(true).await;
    app.stop().await;
}
