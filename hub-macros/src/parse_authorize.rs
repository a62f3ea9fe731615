//! Parsing `#[authorize]`, `#[authorize(roles("a", "b"))]` and
//! `#[authorize(policy = path::ToPolicy)]` on a `#[hub]` block or its
//! methods, into an [`AuthorizeSpec`].
//!
//! `#[hub]` parses them and leaves each attribute in place as
//! `#[authorize(hub_checked)]`, which the `authorize` macro passes through:
//! the user's `use hub_runtime::authorize` stays used, and an
//! `#[authorize]` that no `#[hub]` parsed (on any other item) is reported
//! by the `authorize` macro itself.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, LitStr, Path, Token};

use crate::errors::Errors;

/// The attribute's name.
pub(crate) const AUTHORIZE_ATTR: &str = "authorize";

/// The argument `#[hub]` leaves in the attributes it parsed.
pub(crate) const CHECKED_MARKER: &str = "hub_checked";

/// What the `#[authorize]` attributes of one item require, merged: all of
/// them must hold.
#[derive(Default)]
pub(crate) struct AuthorizeSpec {
    /// Each `roles(…)`: any one of its roles.
    pub(crate) roles: Vec<Vec<LitStr>>,
    /// Every policy type.
    pub(crate) policies: Vec<Path>,
}

/// Whether `attr` is `#[authorize…]` (also as `#[hub_runtime::authorize]`).
pub(crate) fn is_authorize(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == AUTHORIZE_ATTR)
}

/// Parses every `#[authorize]` of `attrs`, marking each as checked.
/// `None` when there is none.
pub(crate) fn take_authorize(
    attrs: &mut [Attribute],
    errors: &mut Errors,
) -> Option<AuthorizeSpec> {
    let mut spec: Option<AuthorizeSpec> = None;
    for attr in attrs.iter_mut().filter(|attr| is_authorize(attr)) {
        let merged = spec.get_or_insert_with(AuthorizeSpec::default);
        if let syn::Meta::List(_) = &attr.meta {
            let result = attr.parse_nested_meta(|meta| parse_option(&meta, merged));
            if let Err(error) = result {
                errors.push(error);
            }
        } else if let syn::Meta::NameValue(value) = &attr.meta {
            errors.at(
                value.eq_token.span(),
                "`#[authorize]` takes options in parentheses: \
                 `#[authorize(roles(\"admin\"))]` or `#[authorize(policy = MyPolicy)]`",
            );
        }
        let path = attr.path().clone();
        let marker = syn::Ident::new(CHECKED_MARKER, Span::call_site());
        attr.meta = syn::parse_quote_spanned!(attr.span()=> #path(#marker));
    }
    spec
}

fn parse_option(
    meta: &syn::meta::ParseNestedMeta<'_>,
    spec: &mut AuthorizeSpec,
) -> syn::Result<()> {
    if meta.path.is_ident("roles") {
        let content;
        syn::parenthesized!(content in meta.input);
        let roles = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
        if roles.is_empty() {
            return Err(meta.error(
                "`roles` needs at least one role: `roles(\"admin\")` or `roles(\"admin\", \"editor\")` (any of them)",
            ));
        }
        if let Some(empty) = roles.iter().find(|role| role.value().is_empty()) {
            return Err(syn::Error::new(empty.span(), "a role cannot be empty"));
        }
        spec.roles.push(roles.into_iter().collect());
        return Ok(());
    }
    if meta.path.is_ident("policy") {
        let path: Path = meta.value()?.parse().map_err(|error| {
            syn::Error::new(
                error.span(),
                "expected the path of a policy type: `policy = path::ToPolicy`",
            )
        })?;
        spec.policies.push(path);
        return Ok(());
    }
    if meta.path.is_ident(CHECKED_MARKER) {
        return Ok(());
    }
    Err(meta.error(
        "unknown option of `#[authorize]`; expected one of: `roles`, `policy` \
         — e.g. `#[authorize(roles(\"admin\"))]` or `#[authorize(policy = MyPolicy)]`",
    ))
}

/// Whether the arguments of an `authorize` macro call are the marker that
/// `#[hub]` leaves.
pub(crate) fn is_checked_marker(args: &TokenStream) -> bool {
    let text = args.to_string();
    text.trim() == CHECKED_MARKER
}

/// The error of an `#[authorize]` that no `#[hub]` parsed. `on_hub_block`:
/// it sits above the `#[hub]` of an impl block (it must go below).
pub(crate) fn misplaced(span: Span, above_hub: bool) -> TokenStream {
    let message = if above_hub {
        "`#[authorize]` must come after `#[hub(…)]`: write `#[hub(client = …)]` first, then `#[authorize]`, then the `impl` block"
    } else {
        "`#[authorize]` only applies to a `#[hub]`: put it on a `#[hub(client = …)]` impl block (below `#[hub]`) or on one of its methods"
    };
    let error = syn::Error::new(span, message).to_compile_error();
    quote!(#error)
}
