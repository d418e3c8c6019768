//! Host object names. K3k derives every object name with `SafeConcatName`, and KRaft must compute
//! the same names (`k3k-<cluster>-kubeconfig`, ...) to find them.

use sha2::{Digest, Sha256};

/// K3k's `SafeConcatName`: parts joined with `-`; if 64 characters or longer, cut to 57 and add
/// `-` and 5 hex characters of the SHA-256 of the whole (cut to 56 and 6 hex characters when the
/// 57th would not be alphanumeric).
pub fn safe_concat_name(parts: &[&str]) -> String {
    let full = parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join("-");
    if full.len() < 64 {
        return full;
    }
    let digest = hex::encode(Sha256::digest(full.as_bytes()));
    let cut_ok =
        full.as_bytes().get(56).is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if cut_ok {
        format!("{}-{}", &full[..57], &digest[..5])
    } else {
        format!("{}-{}", &full[..56], &digest[..6])
    }
}

/// `k3k-<cluster>-<suffix>`, as K3k names what it creates for a cluster.
pub fn k3k_object(cluster: &str, suffix: &str) -> String {
    safe_concat_name(&["k3k", cluster, suffix])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_joined() {
        assert_eq!(k3k_object("demo", "kubeconfig"), "k3k-demo-kubeconfig");
        assert_eq!(safe_concat_name(&["k3k", "", "demo"]), "k3k-demo");
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let long = "a".repeat(70);
        let name = safe_concat_name(&["k3k", &long]);
        assert_eq!(name.len(), 63);
        assert!(name.starts_with(&format!("k3k-{}", "a".repeat(53))));
        assert_eq!(&name[57..58], "-");
    }

    #[test]
    fn a_cut_on_a_hyphen_takes_one_more_hex_character() {
        // Character 57 (index 56) is '-': cut to 56 and add 6 hex characters.
        let parts = format!("{}-{}", "a".repeat(56), "b".repeat(10));
        let name = safe_concat_name(&[&parts]);
        assert_eq!(&name[..56], &"a".repeat(56));
        assert_eq!(name.len(), 56 + 1 + 6);
    }
}
