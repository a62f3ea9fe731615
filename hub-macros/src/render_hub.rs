//! `#[hub]`: the impl block as written, plus `impl Hub for …` with the
//! method table and the dispatch `match`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Path;
use syn::spanned::Spanned;

use crate::parse::{Hook, HubImpl, HubMethod, HubParam, MethodKind, Receiver};
use crate::render_authorize::{render_hub_authorization, render_method_authorization_by_index};

/// `contracts::IClock` → `contracts::IClockContract`.
pub(crate) fn contract_path(client: &Path) -> Path {
    let mut path = client.clone();
    if let Some(last) = path.segments.last_mut() {
        last.ident = format_ident!("{}Contract", last.ident, span = last.ident.span());
    }
    path
}

pub(crate) fn render_hub(model: &HubImpl, client: &Path, private: &TokenStream) -> TokenStream {
    let item = &model.item;
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let contract = contract_path(client);
    let call = format_ident!("__hub_call");

    let descriptors = model
        .methods
        .iter()
        .map(|method| render_descriptor(method, private));
    let arms = model.methods.iter().enumerate().map(|(index, method)| {
        let body = render_dispatch(method, &call, private, &quote!(<Self>), &quote!(self));
        quote!(#index => #body,)
    });
    let call_pattern = if model.methods.is_empty() {
        format_ident!("_")
    } else {
        call.clone()
    };
    let hooks = render_hooks(
        model.on_connected.as_ref(),
        model.on_disconnected.as_ref(),
        private,
    );
    let hub_authorization = render_hub_authorization(model.authorize.as_ref(), private);
    let method_authorization = render_method_authorization_by_index(
        model
            .method_authorize
            .iter()
            .map(|(index, spec)| (*index, spec)),
        private,
    );
    quote! {
        #item

        impl #impl_generics #private::Hub for #self_ty #where_clause {
            type Client = #contract;

            const METHODS: &'static [#private::MethodDescriptor] = &[#(#descriptors),*];

            fn invoke(
                self: #private::Arc<Self>,
                method: usize,
                call: #private::HubCall<Self>,
            ) -> #private::BoxFuture<
                'static,
                #private::Result<#private::MethodOutput, #private::InvocationError>,
            > {
                <Self as #private::Hub>::invoke_with(self, method, call, #private::BoxMethod)
            }

            fn invoke_with<__HubRunner: #private::MethodRunner>(
                self: #private::Arc<Self>,
                method: usize,
                #call_pattern: #private::HubCall<Self>,
                __hub_runner: __HubRunner,
            ) -> <__HubRunner as #private::MethodRunner>::Output {
                match method {
                    #(#arms)*
                    _ => #private::run_method(__hub_runner, #private::unknown_method()),
                }
            }

            #hooks
            #hub_authorization
            #method_authorization
        }
    }
}

/// The `MethodDescriptor` of one method.
pub(crate) fn render_descriptor(method: &HubMethod, private: &TokenStream) -> TokenStream {
    let name = &method.wire_name;
    let parameters = method
        .params
        .iter()
        .filter(|param| matches!(param, HubParam::Wire(_)))
        .count();
    let uploads = method
        .params
        .iter()
        .filter(|param| matches!(param, HubParam::Upload(_)))
        .count();
    let descriptor = match method.kind {
        MethodKind::Unary => quote!(#private::MethodDescriptor::unary(#name, #parameters)),
        MethodKind::Stream { .. } => {
            quote!(#private::MethodDescriptor::server_stream(#name, #parameters))
        }
    };
    if uploads == 0 {
        descriptor
    } else {
        quote!(#descriptor.with_upload_streams(#uploads))
    }
}

/// `Hub::on_connected` / `Hub::on_disconnected`, calling the hooks.
pub(crate) fn render_hooks(
    on_connected: Option<&Hook>,
    on_disconnected: Option<&Hook>,
    private: &TokenStream,
) -> TokenStream {
    let on_connected = on_connected.map(|hook| {
        let call = render_hook_call(hook);
        quote! {
            fn on_connected(
                self: #private::Arc<Self>,
                __hub_context: #private::CallContext<Self>,
            ) -> #private::BoxFuture<'static, #private::Result<(), #private::HubError>> {
                #private::Box::pin(async move { #call })
            }
        }
    });
    let on_disconnected = on_disconnected.map(|hook| {
        let call = render_hook_call(hook);
        quote! {
            fn on_disconnected(
                self: #private::Arc<Self>,
                __hub_context: #private::CallContext<Self>,
                __hub_error: #private::Option<#private::HubError>,
            ) -> #private::BoxFuture<'static, ()> {
                #private::Box::pin(async move { #call })
            }
        }
    });
    quote!(#on_connected #on_disconnected)
}

fn receiver(receiver: Receiver) -> TokenStream {
    match receiver {
        Receiver::Ref => quote!(&*self),
        Receiver::Arc => quote!(self),
    }
}

/// The dispatch of one method: binds the arguments from `call`, calls
/// `#callee::method(#hub, …)` (`<Self>` on `self` for an `impl` block,
/// `<H as Trait>` on an `Arc<H>` for a `#[hub_server]` trait) and answers,
/// in a future handed unboxed to `__hub_runner` (the `MethodRunner` of the
/// emitted `invoke_with`).
pub(crate) fn render_dispatch(
    method: &HubMethod,
    call: &syn::Ident,
    private: &TokenStream,
    callee: &TokenStream,
    hub: &TokenStream,
) -> TokenStream {
    let ident = &method.ident;
    let this = match method.receiver {
        Receiver::Ref => quote!(&*#hub),
        Receiver::Arc => quote!(#hub),
    };
    let mut binds = Vec::new();
    let mut args = Vec::new();
    let mut wire_index = 0usize;
    let mut upload_index = 0usize;
    for (position, param) in method.params.iter().enumerate() {
        match param {
            HubParam::Wire(ty) => {
                let name = format_ident!("__hub_arg{position}");
                let index = wire_index;
                wire_index += 1;
                binds.push(quote_spanned! {ty.span()=>
                    let #name = #private::bind::<#ty>(
                        #private::HubCall::arguments(&#call),
                        #index,
                    )?;
                });
                args.push(quote!(#name));
            }
            HubParam::Context { by_ref: true } => {
                args.push(quote!(#private::HubCall::context(&#call)));
            }
            HubParam::Context { by_ref: false } => {
                args.push(quote!(#private::Clone::clone(#private::HubCall::context(&#call))));
            }
            HubParam::Upload(item) => {
                let name = format_ident!("__hub_arg{position}");
                let index = upload_index;
                upload_index += 1;
                binds.push(quote_spanned! {item.span()=>
                    let #name = #private::upload::<_, #item>(&mut #call, #index)?;
                });
                args.push(quote!(#name));
            }
        }
    }
    // Upload streams are taken out of the call.
    let rebind = (upload_index > 0).then(|| quote!(let mut #call = #call;));
    // At the return type (the runtime path too, so that the whole call
    // expression is there): "`T` cannot be sent" when the result is not
    // serializable.
    let at_output = crate::render_proxy::respan(private.clone(), method.output_span);
    let output = quote_spanned! {method.output_span=>
        #at_output::Returned::new(__hub_output).into_output()
    };
    match method.kind {
        MethodKind::Stream { fallible } => {
            let unwrap = fallible.then(|| quote!(let __hub_output = __hub_output?;));
            // At the return type (the runtime path too, as for results):
            // "`T` cannot be sent" when the items are not serializable.
            let items = quote_spanned! {method.output_span=>
                #at_output::StreamReturned::new(__hub_output).into_items()
            };
            quote! {
                #private::run_method(__hub_runner, async move {
                    #rebind
                    #(#binds)*
                    let __hub_output = #callee::#ident(#this, #(#args),*).await;
                    #unwrap
                    let __hub_items = {
                        use #private::IntoItemsFromResults as _;
                        use #private::IntoItemsFromValues as _;
                        #items
                    };
                    #private::drive_stream(
                        #private::HubCall::stream_items(&#call)?,
                        __hub_items,
                    )
                    .await
                })
            }
        }
        MethodKind::Unary => quote! {
            #private::run_method(__hub_runner, async move {
                #rebind
                #(#binds)*
                let __hub_output = #callee::#ident(#this, #(#args),*).await;
                {
                    use #private::IntoOutputFromResult as _;
                    use #private::IntoOutputFromValue as _;
                    #output
                }
            })
        },
    }
}

pub(crate) fn render_hook_call(hook: &Hook) -> TokenStream {
    let ident = &hook.ident;
    let this = receiver(hook.receiver);
    // The parser allows one context and (in `on_disconnected`) one error,
    // so each is moved at most once.
    let args = hook.params.iter().map(|param| match param {
        HubParam::Context { by_ref: true } => quote!(&__hub_context),
        HubParam::Context { by_ref: false } => quote!(__hub_context),
        HubParam::Wire(_) | HubParam::Upload(_) => quote!(__hub_error),
    });
    quote!(<Self>::#ident(#this, #(#args),*).await)
}
