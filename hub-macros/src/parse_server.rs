//! Parsing `#[hub_server]` traits (the hub's own methods as a contract)
//! and `#[hub]` on implementations of such traits.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, ItemTrait, LitStr,
    PathArguments, ReturnType, TraitItem, Type, TypeParamBound,
};

use crate::errors::Errors;
use crate::parse::{
    HubMethod, METHOD_ATTR, MethodKind, ON_CONNECTED, ON_DISCONNECTED, check_duplicate_names,
    doc_text, docs, last_segment_is, param_ident, parse_hub_method, single_generic_argument,
    take_method_options,
};

/// A wire parameter of a hub method, as the typed proxy takes it.
pub(crate) struct ProxyParam {
    pub(crate) ident: Ident,
    /// The value's type, or the items' type of an upload stream.
    pub(crate) ty: Type,
    pub(crate) upload: bool,
}

/// How the typed proxy calls a method.
pub(crate) enum ProxyCall {
    /// `invoke`, resolving with the value (`None` for `()`).
    Invoke(Option<Type>),
    /// `send`: fire-and-forget.
    Send,
    /// `stream`, of these items.
    Stream(Type),
}

/// One method of a `#[hub_server]` trait.
pub(crate) struct ServerMethod {
    /// What the dispatch needs (as for an `impl` block).
    pub(crate) hub: HubMethod,
    pub(crate) docs: Vec<syn::Attribute>,
    pub(crate) doc_text: String,
    pub(crate) params: Vec<ProxyParam>,
    pub(crate) uses_context: bool,
    pub(crate) call: ProxyCall,
}

/// A `#[hub_server]` trait.
pub(crate) struct ServerTrait {
    /// The trait, helper attributes removed.
    pub(crate) item: ItemTrait,
    pub(crate) methods: Vec<ServerMethod>,
}

pub(crate) fn parse_server_trait(mut item: ItemTrait, errors: &mut Errors) -> ServerTrait {
    if !item.generics.params.is_empty() {
        errors.at(
            item.generics.span(),
            "a `#[hub_server]` trait cannot be generic: the wire fixes every argument's type",
        );
    }
    if let Some(unsafety) = &item.unsafety {
        errors.at(
            unsafety.span(),
            "a `#[hub_server]` trait cannot be `unsafe`",
        );
    }
    let mut methods = Vec::new();
    let mut names = Vec::new();
    for trait_item in &mut item.items {
        let TraitItem::Fn(method) = trait_item else {
            errors.at(
                trait_item.span(),
                "a `#[hub_server]` trait holds only hub methods: \
                 `async fn name(&self, arg: Type) -> Result`",
            );
            continue;
        };
        let options = take_method_options(&mut method.attrs, &["name", "stream", "send"], errors);
        let sig = &method.sig;
        let ident = sig.ident.to_string();
        if ident == ON_CONNECTED || ident == ON_DISCONNECTED {
            errors.at(
                sig.ident.span(),
                format!(
                    "`{ident}` is a lifecycle hook, not part of the contract: write it in the \
                     `#[hub]` impl of the trait"
                ),
            );
            continue;
        }
        if sig.asyncness.is_none() {
            errors.at(
                sig.fn_token.span(),
                "hub methods must be `async fn`: `async fn name(&self, arg: Type) -> Result`",
            );
            continue;
        }
        if let Some(body) = &method.default {
            errors.at(
                body.span(),
                "hub methods cannot have a default body: the hub implements them",
            );
            continue;
        }
        if let Some(unsafety) = &sig.unsafety {
            errors.at(unsafety.span(), "hub methods cannot be `unsafe`");
            continue;
        }
        if let Some(clause) = &sig.generics.where_clause {
            errors.at(clause.span(), "a hub method cannot have a `where` clause");
            continue;
        }
        let name_span = options
            .name
            .as_ref()
            .map_or_else(|| sig.ident.span(), LitStr::span);
        let send = options.send;
        let Some(hub) = parse_hub_method(sig, options, errors) else {
            continue;
        };
        let mut params = Vec::new();
        let mut uses_context = false;
        for (index, input) in sig.inputs.iter().enumerate() {
            let FnArg::Typed(arg) = input else { continue };
            let ty = &*arg.ty;
            let is_context = match ty {
                Type::Reference(reference) => last_segment_is(&reference.elem, "CallContext"),
                ty => last_segment_is(ty, "CallContext"),
            };
            if is_context {
                uses_context = true;
                continue;
            }
            let ident = param_ident(&arg.pat, index);
            if last_segment_is(ty, "UploadStream") {
                if let Some(item) = single_generic_argument(ty) {
                    params.push(ProxyParam {
                        ident,
                        ty: item,
                        upload: true,
                    });
                }
            } else {
                params.push(ProxyParam {
                    ident,
                    ty: ty.clone(),
                    upload: false,
                });
            }
        }
        let call = match hub.kind {
            MethodKind::Stream { fallible } => {
                let ReturnType::Type(_, written) = &sig.output else {
                    continue;
                };
                let stream = if fallible {
                    first_type_argument(written).unwrap_or_else(|| (**written).clone())
                } else {
                    (**written).clone()
                };
                match stream_item(&stream) {
                    Some(item) => ProxyCall::Stream(value_of_result(&item)),
                    None => {
                        errors.at(
                            written.span(),
                            "name the stream's item type in the contract: \
                             `-> impl Stream<Item = T>` (or `BoxStream<'static, T>`)",
                        );
                        continue;
                    }
                }
            }
            MethodKind::Unary => {
                let output = match &sig.output {
                    ReturnType::Default => None,
                    ReturnType::Type(_, ty) => {
                        let value = value_of_result(ty);
                        (!is_unit(&value)).then_some(value)
                    }
                };
                match (send, output) {
                    (None, output) => ProxyCall::Invoke(output),
                    (Some(_), None) => ProxyCall::Send,
                    (Some(_), Some(output)) => {
                        errors.at(
                            output.span(),
                            "a fire-and-forget method returns nothing: its caller does not \
                             wait for it (remove `send` or the result)",
                        );
                        continue;
                    }
                }
            }
        };
        names.push((hub.wire_name.clone(), name_span));
        methods.push(ServerMethod {
            hub,
            docs: docs(&method.attrs),
            doc_text: doc_text(&method.attrs),
            params,
            uses_context,
            call,
        });
    }
    check_duplicate_names(
        names.iter().map(|(name, span)| (name.as_str(), *span)),
        errors,
    );
    ServerTrait { item, methods }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

/// The first type argument of the last segment (`T` of `Result<T, E>`).
fn first_type_argument(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let segment = path.path.segments.last()?;
    let PathArguments::AngleBracketed(arguments) = &segment.arguments else {
        return None;
    };
    arguments.args.iter().find_map(|argument| match argument {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    })
}

/// `T` for `Result<T, E>`, else the type itself.
fn value_of_result(ty: &Type) -> Type {
    if last_segment_is(ty, "Result") {
        if let Some(value) = first_type_argument(ty) {
            return value;
        }
    }
    ty.clone()
}

/// `X` of `impl Stream<Item = X>`, `dyn Stream<Item = X> + Send`,
/// `Box<…>`, `Pin<Box<…>>` or `BoxStream<'a, X>`.
fn stream_item(ty: &Type) -> Option<Type> {
    let from_bounds = |bounds: &syn::punctuated::Punctuated<TypeParamBound, syn::Token![+]>| {
        bounds.iter().find_map(|bound| {
            let TypeParamBound::Trait(bound) = bound else {
                return None;
            };
            let segment = bound.path.segments.last()?;
            if segment.ident != "Stream" {
                return None;
            }
            let PathArguments::AngleBracketed(arguments) = &segment.arguments else {
                return None;
            };
            arguments.args.iter().find_map(|argument| match argument {
                GenericArgument::AssocType(assoc) if assoc.ident == "Item" => {
                    Some(assoc.ty.clone())
                }
                _ => None,
            })
        })
    };
    match ty {
        Type::ImplTrait(ty) => from_bounds(&ty.bounds),
        Type::TraitObject(ty) => from_bounds(&ty.bounds),
        Type::Group(group) => stream_item(&group.elem),
        Type::Paren(paren) => stream_item(&paren.elem),
        Type::Path(path) => {
            let segment = path.path.segments.last()?;
            if segment.ident == "BoxStream" {
                let PathArguments::AngleBracketed(arguments) = &segment.arguments else {
                    return None;
                };
                return arguments.args.iter().find_map(|argument| match argument {
                    GenericArgument::Type(ty) => Some(ty.clone()),
                    _ => None,
                });
            }
            if segment.ident == "Pin" || segment.ident == "Box" {
                return stream_item(&single_generic_argument(ty)?);
            }
            None
        }
        _ => None,
    }
}

/// `#[hub]` on `impl Trait for Hub`: the block (minus the lifecycle hooks,
/// which move to `impl Hub`) and the hooks.
pub(crate) struct HubTraitImpl {
    pub(crate) item: ItemImpl,
    pub(crate) hooks: Vec<ImplItemFn>,
    /// The hooks as the `impl`-block form parses them.
    pub(crate) on_connected: Option<crate::parse::Hook>,
    pub(crate) on_disconnected: Option<crate::parse::Hook>,
    /// `#[authorize]` on the block: the whole hub.
    pub(crate) authorize: Option<crate::parse_authorize::AuthorizeSpec>,
    /// `#[authorize]` on methods, by Rust name.
    pub(crate) method_authorize: Vec<(String, crate::parse_authorize::AuthorizeSpec)>,
}

pub(crate) fn parse_hub_trait_impl(mut item: ItemImpl, errors: &mut Errors) -> HubTraitImpl {
    let authorize = crate::parse_authorize::take_authorize(&mut item.attrs, errors);
    let mut method_authorize = Vec::new();
    let mut hooks = Vec::new();
    let mut kept = Vec::new();
    for impl_item in item.items.drain(..) {
        match impl_item {
            ImplItem::Fn(method)
                if method.sig.ident == ON_CONNECTED || method.sig.ident == ON_DISCONNECTED =>
            {
                hooks.push(method);
            }
            ImplItem::Fn(mut method) => {
                if let Some(spec) =
                    crate::parse_authorize::take_authorize(&mut method.attrs, errors)
                {
                    method_authorize.push((method.sig.ident.to_string(), spec));
                }
                if let Some(attr) = method
                    .attrs
                    .iter()
                    .find(|attr| attr.path().is_ident(METHOD_ATTR))
                {
                    errors.at(
                        attr.span(),
                        format!(
                            "`#[{METHOD_ATTR}]` goes on the trait's method: the trait is the \
                             contract that clients share"
                        ),
                    );
                    method
                        .attrs
                        .retain(|attr| !attr.path().is_ident(METHOD_ATTR));
                }
                kept.push(ImplItem::Fn(method));
            }
            other => kept.push(other),
        }
    }
    item.items = kept;
    // The hooks are parsed as in an `impl` block of their own.
    let hook_block: ItemImpl = ItemImpl {
        attrs: Vec::new(),
        defaultness: None,
        unsafety: None,
        impl_token: item.impl_token,
        generics: item.generics.clone(),
        trait_: None,
        self_ty: item.self_ty.clone(),
        brace_token: item.brace_token,
        items: hooks.iter().cloned().map(ImplItem::Fn).collect(),
    };
    let parsed = crate::parse::parse_hub_impl(hook_block, errors);
    HubTraitImpl {
        item,
        hooks,
        on_connected: parsed.on_connected,
        on_disconnected: parsed.on_disconnected,
        authorize,
        method_authorize,
    }
}

/// The span of the trait of a trait impl, for its error messages.
pub(crate) fn trait_span(item: &ItemImpl) -> Span {
    item.trait_
        .as_ref()
        .map_or_else(Span::call_site, |(_, path, _)| path.span())
}
