//! `typescript` on `#[hub_server]` / `#[hub_client]`: the contract
//! describes its methods and types to `hub_runtime::typescript`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Type};

use crate::parse::{ClientTrait, doc_text};
use crate::parse_server::{ProxyCall, ServerTrait};

/// One `TsParam`.
fn param(ident: &Ident, ty: &Type, upload: bool, private: &TokenStream) -> TokenStream {
    let name = ident.to_string();
    let ts_type = quote_spanned!(ty.span()=> #private::ts_type::<#ty>());
    quote! {
        #private::TsParam {
            rust_name: #name,
            ty: #ts_type,
            upload: #upload,
        }
    }
}

fn ts_type(ty: &Type, private: &TokenStream) -> TokenStream {
    let ts_type = quote_spanned!(ty.span()=> #private::ts_type::<#ty>());
    quote!(#private::Some(#ts_type))
}

#[allow(clippy::too_many_arguments)]
fn method(
    ident: &Ident,
    wire_name: &str,
    docs: &str,
    params: Vec<TokenStream>,
    output: TokenStream,
    kind: &str,
    private: &TokenStream,
) -> TokenStream {
    let name = ident.to_string();
    let kind = format_ident!("{kind}");
    quote! {
        #private::TsMethod {
            rust_name: #name,
            wire_name: #wire_name,
            docs: #docs,
            params: #private::Vec::from([#(#params),*]),
            output: #output,
            kind: #private::TsMethodKind::#kind,
        }
    }
}

fn contract_impl(
    trait_ident: &Ident,
    side: &str,
    docs: &str,
    methods: Vec<TokenStream>,
    private: &TokenStream,
) -> TokenStream {
    let contract = format_ident!("{trait_ident}Contract");
    let name = trait_ident.to_string();
    let side = format_ident!("{side}");
    quote! {
        impl #private::TypeScriptContract for #contract {
            fn typescript() -> #private::TsContract {
                #private::TsContract {
                    name: #name,
                    side: #private::TsSide::#side,
                    docs: #docs,
                    methods: #private::Vec::from([#(#methods),*]),
                }
            }
        }
    }
}

pub(crate) fn render_server(model: &ServerTrait, private: &TokenStream) -> TokenStream {
    let methods = model
        .methods
        .iter()
        .map(|server_method| {
            let params = server_method
                .params
                .iter()
                .map(|p| param(&p.ident, &p.ty, p.upload, private))
                .collect();
            let none = quote!(#private::None);
            let (output, kind) = match &server_method.call {
                ProxyCall::Invoke(Some(ty)) => (ts_type(ty, private), "Invoke"),
                ProxyCall::Invoke(None) => (none, "Invoke"),
                ProxyCall::Send => (none, "Send"),
                ProxyCall::Stream(ty) => (ts_type(ty, private), "Stream"),
            };
            method(
                &server_method.hub.ident,
                &server_method.hub.wire_name,
                &server_method.doc_text,
                params,
                output,
                kind,
                private,
            )
        })
        .collect();
    contract_impl(
        &model.item.ident,
        "Hub",
        &doc_text(&model.item.attrs),
        methods,
        private,
    )
}

pub(crate) fn render_client(model: &ClientTrait, private: &TokenStream) -> TokenStream {
    let methods = model
        .methods
        .iter()
        .map(|client_method| {
            let params = client_method
                .params
                .iter()
                .map(|p| param(&p.ident, &p.ty, false, private))
                .collect();
            let (output, kind) = match &client_method.output {
                Some(ty) => (ts_type(ty, private), "Invoke"),
                None => (quote!(#private::None), "Send"),
            };
            let docs = doc_text(&client_method.docs);
            method(
                &client_method.ident,
                &client_method.wire_name,
                &docs,
                params,
                output,
                kind,
                private,
            )
        })
        .collect();
    contract_impl(
        &model.item.ident,
        "Client",
        &doc_text(&model.item.attrs),
        methods,
        private,
    )
}
