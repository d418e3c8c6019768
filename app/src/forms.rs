//! Form plumbing shared by every page: where a form's error and notice come from (the action's
//! result with JavaScript, the session's flash without), and labelled fields that show them.

use leptos::prelude::*;

use crate::accounts::api::Flash;
use crate::error::ApiError;

/// The state one form shows.
#[derive(Clone)]
pub struct FormState {
    error: Signal<Option<ApiError>>,
    notice: Signal<Option<String>>,
    flash: Option<Flash>,
}

impl FormState {
    /// The state of a plain HTML form (no server action in the page): only what its post left.
    pub fn posted(name: &'static str, flash: Option<Flash>, success: &'static str) -> Self {
        Self::new(name, Signal::derive(|| None::<Result<(), ApiError>>), flash, success)
    }

    /// `result` is the action's latest outcome; `flash` what a plain form post left for `name`;
    /// `success` what to say when the action worked.
    pub fn new<T: Send + Sync + 'static>(
        name: &'static str,
        result: Signal<Option<Result<T, ApiError>>>,
        flash: Option<Flash>,
        success: &'static str,
    ) -> Self {
        let flash = flash.filter(|f| f.form == name);
        let flash_error = flash.as_ref().and_then(|f| f.error.clone());
        let flash_notice = flash.as_ref().and_then(|f| f.notice.clone());
        let error = Signal::derive(move || {
            match result.with(|r| r.as_ref().map(|r| r.as_ref().err().cloned())) {
                Some(outcome) => outcome,
                None => flash_error.clone(),
            }
        });
        let notice = Signal::derive(move || match result.with(|r| r.as_ref().map(Result::is_ok)) {
            Some(true) => Some(success.to_owned()),
            Some(false) => None,
            None => flash_notice.clone(),
        });
        Self { error, notice, flash }
    }

    /// Also take errors from a second action on the same form area.
    pub fn or_from<T: Send + Sync + 'static>(
        mut self,
        other: Signal<Option<Result<T, ApiError>>>,
    ) -> Self {
        let first = self.error;
        self.error = Signal::derive(move || {
            other
                .with(|r| r.as_ref().and_then(|r| r.as_ref().err().cloned()))
                .or_else(|| first.get())
        });
        self
    }

    pub fn field_error(&self, field: &'static str) -> Signal<Option<String>> {
        let error = self.error;
        Signal::derive(move || error.with(|e| e.as_ref().and_then(|e| e.field(field))))
    }

    /// What the user typed last time, when a plain form post failed.
    pub fn kept_value(&self, field: &str) -> Option<String> {
        self.flash.as_ref().and_then(|f| f.value(field))
    }
}

/// Bumps `auth` whenever `result` turns successful: who is signed in may have changed.
/// Call once per action, at the top of a component (not inside a view that re-renders).
pub fn refresh_viewer_on_success<T: Send + Sync + 'static>(
    result: Signal<Option<Result<T, ApiError>>>,
    auth: RwSignal<u64>,
) {
    Effect::new(move |_| {
        if result.with(|r| matches!(r, Some(Ok(_)))) {
            auth.update(|v| *v += 1);
        }
    });
}

/// The form-level message: what went wrong, or that it worked.
#[component]
pub fn FormAlert(state: FormState) -> impl IntoView {
    let error = state.error;
    let notice = state.notice;
    view! {
        {move || error.get().map(|e| view! { <p class="alert error" role="alert">{e.to_string()}</p> })}
        {move || {
            notice.get().filter(|_| error.with(Option::is_none)).map(|n| view! { <p class="alert ok" role="status">{n}</p> })
        }}
    }
}

/// A labelled input with its hint and its error, linked for screen readers.
#[component]
pub fn Field(
    state: FormState,
    name: &'static str,
    #[prop(into)] label: String,
    #[prop(default = "text")] kind: &'static str,
    autocomplete: &'static str,
    /// A fixed sentence, or one made for this render (a limit from the policy).
    #[prop(optional, into)]
    hint: Option<Oco<'static, str>>,
    /// What the field shows before anything was typed (what is kept from a post wins).
    #[prop(optional, into)]
    initial: Option<String>,
) -> impl IntoView {
    let id = format!("field-{name}");
    let error_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let error = state.field_error(name);
    // Passwords are never kept or echoed back.
    let value = (kind != "password").then(|| state.kept_value(name).or(initial)).flatten();
    let described_by =
        if hint.is_some() { format!("{hint_id} {error_id}") } else { error_id.clone() };
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <input
                id=id
                name=name
                type=kind
                autocomplete=autocomplete
                value=value
                aria-invalid=move || error.with(Option::is_some).then_some("true")
                aria-describedby=described_by
            />
            {hint.map(|h| view! { <p class="hint" id=hint_id>{h}</p> })}
            <p class="field-error" id=error_id>{move || error.get()}</p>
        </div>
    }
}
