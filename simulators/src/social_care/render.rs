//! A council's social-care facts as the FHIR R4 resources its case-management system serves.
//!
//! Pure: the same record always renders to the same bytes. The person, the council and the GP
//! practice first, then the social worker, the episode, the care plans, and each referral as a
//! ServiceRequest (the council's copy of what the practice asked for) followed by the Task
//! that tracks it.

use serde_json::{Value, json};

use tideway_profiles::systems;

use crate::fhir_r4::render::{coding, organization, patient_resource, snomed, with_meta};
use crate::population::social_care::{
    CARE_PLAN, CareActivity, LocalAuthority, PlanStatus, ReferralStatus, SOCIAL_SERVICE_PROCEDURE,
    SOCIAL_WORKER, SocialCareRecord, SocialWorker,
};
use crate::population::{CITY, COUNTRY};

/// When the council's directory entries (its Organization, its staff) last changed.
const DIRECTORY_UPDATED: &str = "2024-01-01T09:00:00Z";

/// The R4 `Task.code` system: what the task asks of its owner.
const TASK_CODE: &str = "http://hl7.org/fhir/CodeSystem/task-code";

/// The record as R4 resources: Patient, the council's Organization, the GP practice's,
/// Practitioner, PractitionerRole, EpisodeOfCare, CarePlans, then each referral's
/// ServiceRequest and Task.
pub fn resources(record: &SocialCareRecord) -> Vec<Value> {
    let subject = json!({"reference": format!("Patient/{}", record.local_id)});
    let council = json!({"reference": format!("Organization/{}", record.authority.id), "display": record.authority.name});
    let practice = &record.demographics.practice;
    let requester =
        json!({"reference": format!("Organization/{}", practice.ods_code), "display": practice.name});
    let worker = json!({"reference": format!("Practitioner/{}", record.social_worker.id)});
    let mut out = vec![
        patient(record),
        authority(&record.authority),
        organization(&record.demographics),
        practitioner(&record.social_worker),
        role(&record.social_worker, &record.authority),
    ];
    let e = &record.episode;
    let mut period = json!({"start": e.start});
    if let (Some(end), Some(p)) = (&e.end, period.as_object_mut()) {
        p.insert("end".into(), json!(end));
    }
    out.push(with_meta(
        json!({
            "resourceType": "EpisodeOfCare",
            "id": e.id,
            "status": if e.active { "active" } else { "finished" },
            "type": [{"text": "Adult social care"}],
            "patient": subject,
            "managingOrganization": council,
            "period": period,
            "careManager": worker
        }),
        &e.last_updated,
    ));
    for plan in &record.care_plans {
        let mut period = json!({"start": plan.start});
        if let (Some(end), Some(p)) = (&plan.end, period.as_object_mut()) {
            p.insert("end".into(), json!(end));
        }
        let activities: Vec<Value> =
            plan.activities.iter().map(|a| json!({"detail": activity(a, plan.status)})).collect();
        out.push(with_meta(
            json!({
                "resourceType": "CarePlan",
                "id": plan.id,
                "status": match plan.status {
                    PlanStatus::Active => "active",
                    PlanStatus::Completed => "completed",
                    PlanStatus::Revoked => "revoked",
                },
                "intent": "plan",
                "category": [{"coding": [snomed(CARE_PLAN)]}],
                "title": "Care and support plan",
                "subject": subject,
                "period": period,
                "created": plan.start,
                "author": worker,
                "supportingInfo": [{"reference": format!("EpisodeOfCare/{}", plan.episode)}],
                "activity": activities
            }),
            &plan.last_updated,
        ));
    }
    for f in &record.referrals {
        out.push(with_meta(
            json!({
                "resourceType": "ServiceRequest",
                "id": f.id,
                "status": request_status(f.status),
                "intent": "order",
                "category": [{"coding": [snomed(SOCIAL_SERVICE_PROCEDURE)]}],
                "code": {"coding": [snomed(f.code)], "text": f.code.display},
                "subject": subject,
                "authoredOn": f.authored,
                "requester": requester,
                "performer": [council]
            }),
            &f.last_updated,
        ));
        let mut task = json!({
            "resourceType": "Task",
            "id": f.task_id,
            "status": task_status(f.status),
            "businessStatus": {"text": f.business_status},
            "intent": "order",
            "code": {"coding": [coding(TASK_CODE, "fulfill", "Fulfill the focal request")]},
            "focus": {"reference": format!("ServiceRequest/{}", f.id)},
            "for": subject,
            "authoredOn": f.authored,
            "lastModified": f.task_last_updated,
            "requester": requester,
            "owner": council
        });
        if let (Some(reason), Some(t)) = (f.status_reason, task.as_object_mut()) {
            t.insert("statusReason".into(), json!({"text": reason}));
        }
        out.push(with_meta(task, &f.task_last_updated));
    }
    out
}

/// The record's Patient alone, under the council's id (what a search by NHS number answers).
pub fn patient(record: &SocialCareRecord) -> Value {
    patient_resource(&record.local_id, &record.demographics, &record.last_updated)
}

fn authority(a: &LocalAuthority) -> Value {
    with_meta(
        json!({
            "resourceType": "Organization",
            "id": a.id,
            "identifier": [{"system": systems::ODS_ORGANIZATION_CODE, "value": a.ods_code}],
            "active": true,
            "type": [{"coding": [coding("http://terminology.hl7.org/CodeSystem/organization-type", "govt", "Government")]}],
            "name": a.name,
            "address": [{"city": CITY, "district": a.borough, "country": COUNTRY}]
        }),
        DIRECTORY_UPDATED,
    )
}

fn practitioner(w: &SocialWorker) -> Value {
    with_meta(
        json!({
            "resourceType": "Practitioner",
            "id": w.id,
            "active": true,
            "name": [{"use": "official", "family": w.family, "given": [w.given]}]
        }),
        DIRECTORY_UPDATED,
    )
}

fn role(w: &SocialWorker, a: &LocalAuthority) -> Value {
    with_meta(
        json!({
            "resourceType": "PractitionerRole",
            "id": w.role_id,
            "active": true,
            "practitioner": {"reference": format!("Practitioner/{}", w.id)},
            "organization": {"reference": format!("Organization/{}", a.id)},
            "code": [{"coding": [snomed(SOCIAL_WORKER)]}]
        }),
        DIRECTORY_UPDATED,
    )
}

fn activity(a: &CareActivity, plan: PlanStatus) -> Value {
    let status = match (a.ongoing, plan) {
        (true, _) => "in-progress",
        (false, PlanStatus::Revoked) => "stopped",
        (false, _) => "completed",
    };
    let code = match a.code {
        Some(c) => json!({"coding": [snomed(c)], "text": a.description}),
        None => json!({"text": a.description}),
    };
    json!({"code": code, "status": status, "description": a.description})
}

/// The council's copy of the request follows the task: open while the task is, completed when
/// it is done, revoked when it was turned down or withdrawn.
pub fn request_status(status: ReferralStatus) -> &'static str {
    match status {
        ReferralStatus::Requested | ReferralStatus::Accepted | ReferralStatus::InProgress => "active",
        ReferralStatus::Completed => "completed",
        ReferralStatus::Rejected | ReferralStatus::Cancelled => "revoked",
    }
}

/// The R4 `Task.status` code of a referral's status.
pub fn task_status(status: ReferralStatus) -> &'static str {
    match status {
        ReferralStatus::Requested => "requested",
        ReferralStatus::Accepted => "accepted",
        ReferralStatus::Rejected => "rejected",
        ReferralStatus::InProgress => "in-progress",
        ReferralStatus::Completed => "completed",
        ReferralStatus::Cancelled => "cancelled",
    }
}
