//! `#[hub_client]`, part 1: the trait itself, rewritten so that every
//! method returns a `Send` future, with the provided `into_handlers()`
//! that registers an implementation on a client connection.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ReturnType, TraitItem};

use crate::parse::{ClientTrait, INTO_HANDLERS};

/// The rewritten trait.
pub(crate) fn render_trait(model: &ClientTrait, private: &TokenStream) -> TokenStream {
    let mut item = model.item.clone();
    for trait_item in &mut item.items {
        let TraitItem::Fn(method) = trait_item else {
            continue;
        };
        let sig = &mut method.sig;
        sig.asyncness = None;
        let output = match &sig.output {
            ReturnType::Default => quote!(()),
            ReturnType::Type(_, ty) => quote!(#ty),
        };
        let span = sig.output.span();
        sig.output = syn::parse_quote_spanned! {span=>
            -> impl #private::Future<Output = #output> + #private::Send
        };
    }
    item.items
        .push(TraitItem::Verbatim(render_into_handlers(model, private)));
    let ident = &item.ident;
    let generated = format!(
        " Generated next to this trait by `#[hub_client]`: [`{ident}Contract`] (what \
         `#[hub(client = {ident})]` names), [`{ident}Broadcast`] (the server's proxy over \
         many connections) and [`{ident}Single`] (over one connection)."
    );
    item.attrs.push(syn::parse_quote!(#[doc = ""]));
    item.attrs.push(syn::parse_quote!(#[doc = #generated]));
    quote!(#item)
}

fn render_into_handlers(model: &ClientTrait, private: &TokenStream) -> TokenStream {
    let trait_ident = &model.item.ident;
    let into_handlers = format_ident!("{INTO_HANDLERS}");
    let client = format_ident!("__hub_client");
    let arguments = format_ident!("__hub_arguments");
    let handlers = format_ident!("__hub_handlers");
    let inserts = model.methods.iter().map(|method| {
        let ident = &method.ident;
        let wire_name = &method.wire_name;
        let count = method.params.len();
        let names: Vec<_> = method.params.iter().map(|param| &param.ident).collect();
        let binds = method.params.iter().enumerate().map(|(index, param)| {
            let name = &param.ident;
            let ty = &param.ty;
            quote_spanned! {ty.span()=>
                let #name = #private::bind::<#ty>(&#arguments, #index)?;
            }
        });
        let call = quote! {
            <Self as #trait_ident>::#ident(&*#client, #(#names),*).await
        };
        let answer = match &method.output {
            None => quote! {
                #call;
                #private::ClientMethodResult::Ok(#private::None)
            },
            Some(output) => {
                let convert = quote_spanned!(output.span()=> #private::client_result::<#output>);
                quote!(#convert(#call))
            }
        };
        let arguments_pattern = if count == 0 {
            format_ident!("_")
        } else {
            arguments.clone()
        };
        quote! {
            #private::ClientHandlers::insert(
                &mut #handlers,
                #wire_name,
                #count,
                #private::client_method(
                    &#client,
                    |#client: #private::Arc<Self>, #arguments_pattern: #private::Arguments| async move {
                        #(#binds)*
                        #answer
                    },
                ),
            );
        }
    });
    let wire_names = model
        .methods
        .iter()
        .map(|method| format!("`{}`", method.wire_name))
        .collect::<Vec<_>>()
        .join(", ");
    let doc = format!(
        " Registers this implementation as the client's methods: the client-side \
         glue of `#[hub_client]`.\n\n \
         The returned `ClientHandlers` answer the server's invocations of {} \
         (matched case-insensitively): each handler binds the arguments, calls the \
         method on a shared `Arc<Self>` and, for a method with a return value, \
         sends the result back as the client result. Hand it to the client \
         connection that dispatches the server's invocations.",
        if wire_names.is_empty() {
            "no method".to_owned()
        } else {
            wire_names
        }
    );
    let mutability = if model.methods.is_empty() {
        quote!()
    } else {
        quote!(mut)
    };
    quote! {
        #[doc = #doc]
        fn #into_handlers(self) -> #private::ClientHandlers
        where
            Self: #private::Sized + #private::Send + #private::Sync + 'static,
        {
            let #client = #private::Arc::new(self);
            let #mutability #handlers = #private::ClientHandlers::new();
            #(#inserts)*
            let _ = &#client;
            #handlers
        }
    }
}
