//! Wire names: the PascalCase of a Rust method name.

/// `show_time` → `ShowTime`, `r#type` → `Type`, `get_v2` → `GetV2`.
///
/// Every `_`-separated part gets an upper-case first letter and keeps the
/// rest as written; underscores disappear. This is the convention of .NET
/// hubs and client interfaces, whose method names are the wire names.
pub(crate) fn pascal_case(rust_name: &str) -> String {
    let name = rust_name.strip_prefix("r#").unwrap_or(rust_name);
    let mut out = String::with_capacity(name.len());
    for part in name.split('_') {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pascal_case;

    #[test]
    fn converts_snake_case() {
        assert_eq!(pascal_case("show_time"), "ShowTime");
        assert_eq!(pascal_case("get_time"), "GetTime");
        assert_eq!(pascal_case("send"), "Send");
        assert_eq!(pascal_case("r#type"), "Type");
        assert_eq!(pascal_case("get_v2"), "GetV2");
        assert_eq!(pascal_case("_private__name_"), "PrivateName");
        assert_eq!(pascal_case("alreadyCamel"), "AlreadyCamel");
    }
}
