//! The reminder sender: every `REMINDER_TICK_SECS` it claims the reminders whose meeting starts
//! within `REMINDER_LEAD_MINS` and sends each as a subscribe message, through the app the member
//! consented in: that app's WeChatClient (its access token), its template, the member's openid
//! there. Apps without a template send nothing. Every instance runs one; the claim
//! (`db::reminders::claim_due`, committed before any send) shares the work, so each reminder goes
//! out once. It runs on the database's upkeep lane, never on the lanes of logins and reads, as a
//! background job (a tick still running when the next is due is not doubled).
//!
//! WeChat's answer decides what becomes of a reminder: sent; 43101 (the member withdrew consent)
//! dropped; busy or slow (-1, 45009, a timeout) waiting again for the next tick, until the
//! meeting starts; anything else given up, counted and logged once per kind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;

use crate::apps::ServedApps;
use crate::china_time::china_time;
use crate::config::{MeetingField, Reminders};
use crate::db::DbHandle;
use crate::db::reminders::{DueReminder, Outcome, SendingApp};
use crate::log_throttle::ERRORS;
use crate::metrics::Metrics;
use crate::wechat::client::{SendSubscribeMessage, WeChatClient};
use crate::wechat::{WeChatError, errcode};

/// Reminders claimed per statement; a full batch is followed by another, within the rate below.
const CLAIM_BATCH: i64 = 100;
/// At most this many reminders a second per instance. A reminder has its lead time (minutes) to
/// go out, while a large backlog (a meeting of thousands, a sender that was stopped) sent as fast
/// as WeChat answers would take the CPU of the people using the app; at this rate a meeting of
/// 10,000 members is reminded within a minute.
const MAX_SENDS_PER_SECOND: f64 = 250.0;
/// Subscribe messages in flight at once per instance.
const SENDS_IN_FLIGHT: usize = 8;
/// The most characters of a `thing` value (WeChat refuses longer ones with 47003).
const MAX_THING_CHARS: usize = 20;
/// The most characters of a `phrase` value.
const MAX_PHRASE_CHARS: usize = 5;
/// The most characters of any other value.
const MAX_OTHER_CHARS: usize = 32;

/// The apps that send reminders: what the claim looks for, and what each reminder goes out with.
struct Senders {
    /// Every app with a template, and its template.
    sending: Arc<[SendingApp]>,
    /// The same apps by appid: the client their reminders go out through, and the template.
    clients: HashMap<String, (Addr<WeChatClient>, String)>,
    /// A reminder recorded without its app (by the release before) is this one's.
    default_appid: Arc<str>,
}

pub(crate) struct ReminderSender {
    db: DbHandle,
    senders: Senders,
    /// The apps without a template, for the start's log line.
    silent: Vec<String>,
    settings: Reminders,
    metrics: Arc<Metrics>,
}

impl ReminderSender {
    /// `None` when reminders are off (no app has a template).
    pub(crate) fn new(
        db: &DbHandle,
        apps: &ServedApps,
        settings: &Reminders,
        metrics: Arc<Metrics>,
    ) -> Option<Self> {
        let with_template: Vec<_> = apps
            .all()
            .iter()
            .filter_map(|app| Some((app, app.reminder_template.clone()?)))
            .collect();
        if with_template.is_empty() {
            return None;
        }
        let senders = Senders {
            sending: with_template
                .iter()
                .map(|(app, template_id)| SendingApp {
                    app_id: app.appid.clone(),
                    template_id: template_id.clone(),
                })
                .collect(),
            clients: with_template
                .iter()
                .map(|(app, template_id)| {
                    (app.appid.clone(), (app.wechat.clone(), template_id.clone()))
                })
                .collect(),
            default_appid: apps.default_app().appid.as_str().into(),
        };
        let silent = apps
            .all()
            .iter()
            .filter(|app| app.reminder_template.is_none())
            .map(|app| app.appid.clone())
            .collect();
        Some(ReminderSender {
            db: db.background(),
            senders,
            silent,
            settings: settings.clone(),
            metrics,
        })
    }

    /// Says which apps send reminders, and how; once, at start.
    pub(crate) fn announce(&self) {
        let on: Vec<String> = self
            .senders
            .sending
            .iter()
            .map(|app| format!("{} (template {})", app.app_id, app.template_id))
            .collect();
        let off = match self.silent.as_slice() {
            [] => String::new(),
            silent => format!("; none in {} (no template)", silent.join(", ")),
        };
        log::info!(
            "meeting reminders on in {}{off}: {} min ahead, every {:?}",
            on.join(", "),
            self.settings.lead.as_secs() / 60,
            self.settings.tick
        );
    }

    /// How often `tick` is run.
    pub(crate) fn every(&self) -> std::time::Duration {
        self.settings.tick
    }

    /// One round: claim, send, record; again while batches come back full, within
    /// `MAX_SENDS_PER_SECOND`.
    pub(crate) async fn tick(&self) {
        let lead = TimeDelta::from_std(self.settings.lead).unwrap_or(TimeDelta::minutes(15));
        loop {
            let batch_began = Instant::now();
            let now = Utc::now();
            let claimed = match self
                .db
                .claim_reminders(
                    self.senders.sending.clone(),
                    self.senders.default_appid.clone(),
                    now,
                    lead,
                    CLAIM_BATCH,
                )
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    ERRORS.log(
                        log::Level::Warn,
                        "reminders: cannot claim due reminders",
                        Some(&e),
                    );
                    return;
                }
            };
            let full = claimed.len() as i64 == CLAIM_BATCH;
            if claimed.is_empty() {
                return;
            }
            let outcomes: Vec<(i64, i64, Outcome)> = futures_util::stream::iter(claimed)
                .map(|due| async move {
                    let outcome = match self.senders.clients.get(&due.app_id) {
                        Some((wechat, template_id)) => {
                            send_one(wechat, &self.settings, template_id, &due).await
                        }
                        // The claim takes only the reminders of these apps.
                        None => Outcome::Failed,
                    };
                    (due.meeting_id, due.user_id, outcome)
                })
                .buffer_unordered(SENDS_IN_FLIGHT)
                .collect()
                .await;
            for (_, _, outcome) in &outcomes {
                let label = match outcome {
                    Outcome::Sent => "sent",
                    Outcome::Refused => "refused",
                    Outcome::Failed => "failed",
                    Outcome::Retry => "retried",
                };
                self.metrics.reminders.with_label_values(&[label]).inc();
            }
            if let Err(e) = self.db.finish_reminders(outcomes, Utc::now()).await {
                // The rows stay claimed: not sent again, which is the safe side.
                ERRORS.log(
                    log::Level::Error,
                    "reminders: outcomes not written",
                    Some(&e),
                );
                return;
            }
            if !full {
                return;
            }
            actix_web::rt::time::sleep(pause_after(CLAIM_BATCH as usize, batch_began.elapsed()))
                .await;
        }
    }
}

/// How long to wait after a batch of `sent` reminders that took `took`, to stay within
/// `MAX_SENDS_PER_SECOND`.
fn pause_after(sent: usize, took: Duration) -> Duration {
    Duration::from_secs_f64(sent as f64 / MAX_SENDS_PER_SECOND).saturating_sub(took)
}

async fn send_one(
    wechat: &Addr<WeChatClient>,
    settings: &Reminders,
    template_id: &str,
    due: &DueReminder,
) -> Outcome {
    // Claimed just before its start and reached after it: a reminder then would be too late.
    if due.start_time <= Utc::now() {
        return Outcome::Failed;
    }
    // WeChat's consent is one openid's in one app: without the member's identity there (moved
    // away since), there is nobody the message may go to.
    let Some(openid) = due.openid.as_deref() else {
        ERRORS.log(
            log::Level::Warn,
            "reminders: a member has no openid in the app they consented in any more; given up",
            None,
        );
        return Outcome::Failed;
    };
    let body = message(settings, template_id, openid, due);
    let answer = match wechat.send(SendSubscribeMessage { body }).await {
        Ok(answer) => answer,
        Err(e) => Err(WeChatError::Transport(e.to_string())),
    };
    match answer {
        Ok(()) => Outcome::Sent,
        Err(WeChatError::Api {
            errcode: errcode::NO_SUBSCRIPTION,
            ..
        }) => Outcome::Refused,
        Err(
            WeChatError::Api {
                errcode: errcode::SYSTEM_BUSY | errcode::API_RATE_LIMITED,
                ..
            }
            | WeChatError::Timeout
            | WeChatError::Transport(_)
            | WeChatError::Overloaded,
        ) => Outcome::Retry,
        Err(e) => {
            ERRORS.log(
                log::Level::Warn,
                &format!(
                    "reminders: WeChat refused a reminder ({}); given up",
                    e.errcode_label()
                ),
                Some(&e),
            );
            Outcome::Failed
        }
    }
}

/// The `subscribe/send` body of one reminder.
pub(crate) fn message(
    settings: &Reminders,
    template_id: &str,
    openid: &str,
    due: &DueReminder,
) -> serde_json::Value {
    let mut data = serde_json::Map::new();
    for (key, field) in &settings.fields {
        let raw = match field {
            MeetingField::Title => due.title.clone(),
            MeetingField::Content => due.content.clone(),
            MeetingField::Location => due.location.clone(),
            MeetingField::Publisher => due.publisher.clone(),
            MeetingField::Start => wechat_time(due.start_time),
            MeetingField::End => wechat_time(due.end_time),
        };
        data.insert(
            key.clone(),
            serde_json::json!({ "value": fit_value(key, &raw) }),
        );
    }
    serde_json::json!({
        "touser": openid,
        "template_id": template_id,
        "page": settings.page.replace("{id}", &due.meeting_id.to_string()),
        "miniprogram_state": settings.miniprogram_state.as_str(),
        "lang": "zh_CN",
        "data": data,
    })
}

/// `2026年12月6日 09:30`, China time: what a template's `time` key takes.
pub(crate) fn wechat_time(t: DateTime<Utc>) -> String {
    china_time(t).format("%Y年%-m月%-d日 %H:%M").to_string()
}

/// A value fitted to its key's rule: one line, and cut (with `…`) to the length the key's kind
/// allows.
pub(crate) fn fit_value(key: &str, raw: &str) -> String {
    let kind = key.trim_end_matches(|c: char| c.is_ascii_digit());
    let max = match kind {
        "thing" => MAX_THING_CHARS,
        "phrase" => MAX_PHRASE_CHARS,
        "time" | "date" => return raw.to_string(),
        _ => MAX_OTHER_CHARS,
    };
    let one_line: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one_line = one_line.trim();
    if one_line.chars().count() <= max {
        return one_line.to_string();
    }
    let mut cut: String = one_line.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_backlog_goes_out_at_the_capped_rate() {
        // A full batch sent faster than the rate allows waits out the rest of its share.
        assert_eq!(pause_after(100, Duration::from_millis(50)).as_millis(), 350);
        // One that took longer than its share goes on at once.
        assert_eq!(pause_after(100, Duration::from_secs(1)), Duration::ZERO);
        let per_minute = 60.0 * CLAIM_BATCH as f64 / pause_after(100, Duration::ZERO).as_secs_f64();
        assert!((per_minute - 60.0 * MAX_SENDS_PER_SECOND).abs() < 1.0);
    }

    #[test]
    fn things_are_cut_to_twenty_characters_with_an_ellipsis() {
        let long = "二零二六年第四季度全体员工工作总结暨明年计划大会";
        let fitted = fit_value("thing1", long);
        assert_eq!(fitted.chars().count(), 20);
        assert!(fitted.ends_with('…'));
        assert!(long.starts_with(fitted.trim_end_matches('…')));
        assert_eq!(fit_value("thing3", "3号楼305"), "3号楼305");
        assert_eq!(fit_value("thing2", "a\nb"), "a b");
        assert_eq!(fit_value("phrase4", "进行中啊啊啊").chars().count(), 5);
    }

    #[test]
    fn the_message_follows_the_configured_keys_page_and_state() {
        let start = Utc.with_ymd_and_hms(2026, 12, 6, 1, 30, 0).unwrap();
        let due = DueReminder {
            meeting_id: 42,
            user_id: 7,
            app_id: "wxa".into(),
            openid: Some("o-member".into()),
            title: "周会".into(),
            content: "第一行\n第二行".into(),
            location: "305".into(),
            start_time: start,
            end_time: start + TimeDelta::hours(1),
            publisher: "张三".into(),
        };
        let settings = Reminders {
            fields: vec![
                ("thing4".into(), MeetingField::Content),
                ("date5".into(), MeetingField::End),
                ("name6".into(), MeetingField::Publisher),
            ],
            page: "pages/m/index?mid={id}&from=reminder".into(),
            lead: std::time::Duration::from_secs(60),
            tick: std::time::Duration::from_secs(1),
            miniprogram_state: crate::config::MiniprogramState::Trial,
        };
        assert_eq!(
            message(&settings, "t", "o-member", &due),
            serde_json::json!({
                "touser": "o-member",
                "template_id": "t",
                "page": "pages/m/index?mid=42&from=reminder",
                "miniprogram_state": "trial",
                "lang": "zh_CN",
                "data": {
                    "thing4": { "value": "第一行 第二行" },
                    "date5": { "value": "2026年12月6日 10:30" },
                    "name6": { "value": "张三" },
                },
            })
        );
    }

    #[test]
    fn times_are_china_time_in_wechat_s_form() {
        let t = Utc.with_ymd_and_hms(2026, 12, 6, 1, 30, 0).unwrap();
        assert_eq!(wechat_time(t), "2026年12月6日 09:30");
        assert_eq!(fit_value("time2", &wechat_time(t)), "2026年12月6日 09:30");
    }
}
