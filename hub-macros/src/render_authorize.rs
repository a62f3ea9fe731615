//! Rendering `#[authorize]`: `Hub::AUTHORIZATION` and
//! `Hub::method_authorization` as constants the runtime checks.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::parse_authorize::AuthorizeSpec;

/// `Authorization { roles: …, policies: … }`. Each policy is named through
/// `PolicyRef::of::<Path>`, at the path's span: a misspelt path is
/// "cannot find type", a type that is no policy "… is not an authorization
/// policy", both at the attribute.
pub(crate) fn render_authorization(spec: &AuthorizeSpec, private: &TokenStream) -> TokenStream {
    let roles = spec.roles.iter().map(|any| quote!(&[#(#any),*]));
    let policies = spec.policies.iter().map(|path| {
        let name = quote!(#path).to_string().replace(' ', "");
        quote_spanned! {path.span()=>
            #private::PolicyRef::of::<#path>(#name)
        }
    });
    quote! {
        #private::Authorization {
            roles: &[#(#roles),*],
            policies: &[#(#policies),*],
        }
    }
}

/// `Some(&AUTHORIZATION)` as a `'static` reference: through a constant,
/// which the compiler promotes.
pub(crate) fn render_static(spec: &AuthorizeSpec, private: &TokenStream) -> TokenStream {
    let authorization = render_authorization(spec, private);
    quote! {{
        const __HUB_AUTHORIZATION: #private::Authorization = #authorization;
        #private::Some(&__HUB_AUTHORIZATION)
    }}
}

/// `const AUTHORIZATION` of `impl Hub`, when the block has `#[authorize]`.
pub(crate) fn render_hub_authorization(
    spec: Option<&AuthorizeSpec>,
    private: &TokenStream,
) -> TokenStream {
    let Some(spec) = spec else {
        return TokenStream::new();
    };
    let authorization = render_authorization(spec, private);
    quote! {
        const AUTHORIZATION: #private::Option<&'static #private::Authorization> =
            #private::Some(&#authorization);
    }
}

/// `fn method_authorization` of `impl Hub` for an inherent block: by
/// method index.
pub(crate) fn render_method_authorization_by_index<'a>(
    specs: impl Iterator<Item = (usize, &'a AuthorizeSpec)>,
    private: &TokenStream,
) -> TokenStream {
    let arms: Vec<_> = specs
        .map(|(index, spec)| {
            let value = render_static(spec, private);
            quote!(#index => #value,)
        })
        .collect();
    if arms.is_empty() {
        return TokenStream::new();
    }
    quote! {
        fn method_authorization(
            method: usize,
        ) -> #private::Option<&'static #private::Authorization> {
            match method {
                #(#arms)*
                _ => #private::None,
            }
        }
    }
}

/// `fn method_authorization` of `impl Hub` for an implementation of a
/// `#[hub_server]` trait: the contract's method order is the trait's, so
/// methods are matched by their Rust name.
pub(crate) fn render_method_authorization_by_name<'a>(
    specs: impl Iterator<Item = (String, &'a AuthorizeSpec)>,
    server_contract: &syn::Path,
    private: &TokenStream,
) -> TokenStream {
    let arms: Vec<_> = specs
        .map(|(name, spec)| {
            let value = render_static(spec, private);
            quote!(#private::Some(&#name) => #value,)
        })
        .collect();
    if arms.is_empty() {
        return TokenStream::new();
    }
    quote! {
        fn method_authorization(
            method: usize,
        ) -> #private::Option<&'static #private::Authorization> {
            let __hub_names: &'static [&'static str] =
                <#server_contract as #private::ServerContract<Self>>::RUST_NAMES;
            match __hub_names.get(method) {
                #(#arms)*
                _ => #private::None,
            }
        }
    }
}
