//! What a valid email, username and password are. Each is parsed once at the edge into a type that
//! can only hold a valid value; the messages are the ones the user reads next to the field.

use std::fmt;

/// A problem with one form field, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// An email address, trimmed and case-folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const FIELD: &'static str = "email";

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let email = raw.trim().to_lowercase();
        let invalid =
            || FieldError::new(Self::FIELD, "Enter an email address like name@example.org.");
        if email.is_empty() {
            return Err(FieldError::new(Self::FIELD, "Enter your email address."));
        }
        if email.len() > 254 {
            return Err(FieldError::new(
                Self::FIELD,
                "An email address has at most 254 characters.",
            ));
        }
        let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| c.is_ascii_graphic() && !"@()<>[]:;,\\\"".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(email))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A username: it appears in host object names and labels, so DNS-label rules apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const FIELD: &'static str = "username";

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        let err = |message: &str| Err(FieldError::new(Self::FIELD, message));
        if name.is_empty() {
            return err("Choose a username.");
        }
        let length = name.chars().count();
        if !(3..=32).contains(&length) {
            return err("A username has 3 to 32 characters.");
        }
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return err("Use only lowercase letters a-z, digits and hyphens.");
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return err("A username starts with a letter.");
        }
        if name.ends_with('-') {
            return err("A username cannot end with a hyphen.");
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password that meets the policy. Its `Debug` never shows it.
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN_CHARS: usize = 12;
    pub const MAX_CHARS: usize = 128;

    /// Checks the policy; `field` and `confirm_field` name the form fields messages belong to.
    pub fn parse(
        (field, confirm_field): (&'static str, &'static str),
        password: &str,
        confirmation: &str,
        username: &str,
        email: &str,
    ) -> Result<Self, FieldError> {
        let length = password.chars().count();
        if length < Self::MIN_CHARS {
            return Err(FieldError::new(
                field,
                format!("Use at least {} characters.", Self::MIN_CHARS),
            ));
        }
        if length > Self::MAX_CHARS {
            return Err(FieldError::new(
                field,
                format!("Use at most {} characters.", Self::MAX_CHARS),
            ));
        }
        let folded = password.to_lowercase();
        if folded == username.trim().to_lowercase() || folded == email.trim().to_lowercase() {
            return Err(FieldError::new(field, "Your password cannot be your username or email."));
        }
        if password != confirmation {
            return Err(FieldError::new(confirm_field, "The two passwords do not match."));
        }
        Ok(Self(password.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_case_folded_and_trimmed() {
        assert_eq!(Email::parse("  Ada@Example.ORG ").unwrap().as_str(), "ada@example.org");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "ada@@example.org",
            "a b@example.org",
            "ada@-x.org",
            "ada@exa_mple.org",
            "a..b@example.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn usernames_follow_dns_label_rules() {
        for good in ["ada", "ada-lovelace", "a12", "abcdefghijklmnopqrstuvwxyz012345"] {
            assert!(Username::parse(good).is_ok(), "{good:?} refused");
        }
        for (bad, why) in [
            ("ab", "3 to 32"),
            ("abcdefghijklmnopqrstuvwxyz0123456", "3 to 32"),
            ("Ada", "lowercase"),
            ("ada_l", "lowercase"),
            ("1ada", "starts with a letter"),
            ("-ada", "starts with a letter"),
            ("ada-", "end with a hyphen"),
        ] {
            let err = Username::parse(bad).unwrap_err();
            assert!(err.message.contains(why), "{bad:?}: {}", err.message);
        }
    }

    #[test]
    fn password_policy() {
        let parse = |p: &str, c: &str| {
            NewPassword::parse(("password", "password_confirm"), p, c, "ada", "ada@example.org")
        };
        assert!(parse("correct horse battery", "correct horse battery").is_ok());
        assert!(parse("short", "short").unwrap_err().message.contains("at least 12"));
        let long = "x".repeat(129);
        assert!(parse(&long, &long).unwrap_err().message.contains("at most 128"));
        assert!(parse("ADA@example.org", "ADA@example.org")
            .unwrap_err()
            .message
            .contains("cannot be"));
        let mismatch = parse("correct horse battery", "correct horse battery!").unwrap_err();
        assert_eq!(mismatch.field, "password_confirm");
        // Twelve characters, not twelve bytes.
        assert!(parse("ééééééé", "ééééééé").is_err());
        assert!(!format!("{:?}", parse("correct horse battery", "correct horse battery").unwrap())
            .contains("horse"));
    }
}
