"""Reference ArcFace loss (additive angular margin softmax cross-entropy, Deng et al. 2019)."""

from __future__ import annotations

import math

import numpy as np

from fastnn.reference._util import f64
from fastnn.reference.l2_normalize import l2_normalize, l2_normalize_backward
from fastnn.reference.softmax_xent import softmax_cross_entropy


def arcface_target(cos, margin):
    """(cos(theta + m), its derivative in cos) on target cosines, insightface's rule
    (easy_margin=False): ``cos * cos(m) - sin * sin(m)``, ``sin = sqrt(max(1 - cos**2, 0))``,
    where ``cos > cos(pi - m)``; past that (theta + m > pi) ``cos - sin(pi - m) * m``, a line
    that keeps falling as theta grows. d sin / d cos = -cos / sin is taken as 0 where sin = 0."""
    cos = f64(cos)
    cos_m, sin_m = math.cos(margin), math.sin(margin)
    sin = np.sqrt(np.maximum(1.0 - cos * cos, 0.0))
    safe_sin = np.where(sin > 0, sin, 1.0)
    phi = cos * cos_m - sin * sin_m
    dphi = cos_m + np.where(sin > 0, sin_m * cos / safe_sin, 0.0)
    past_pi = ~(cos > math.cos(math.pi - margin))
    return (np.where(past_pi, cos - math.sin(math.pi - margin) * margin, phi),
            np.where(past_pi, 1.0, dphi))


def arcface_loss(embeddings, weight, labels, scale=64.0, margin=0.5, eps=1e-12):
    """(mean loss, dloss/dembeddings, dloss/dweight) of the ArcFace loss.

    e_hat, w_hat = the rows of embeddings (N, D) and weight (C, D) L2-normalised; cos = e_hat
    w_hat^T; on the target column cos -> arcface_target(cos); logits = scale * cos; loss = mean
    softmax cross-entropy of the logits against labels; gradients back through all of it."""
    embeddings, weight = f64(embeddings), f64(weight)
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    e_hat, w_hat = l2_normalize(embeddings, eps), l2_normalize(weight, eps)
    cos = e_hat @ w_hat.T
    phi, dphi = arcface_target(cos[rows, labels], margin)
    margined = cos.copy()
    margined[rows, labels] = phi
    loss, dlogits = softmax_cross_entropy(scale * margined, labels)
    dcos = scale * dlogits
    dcos[rows, labels] *= dphi
    grad_embeddings = l2_normalize_backward(dcos @ w_hat, embeddings, eps)
    grad_weight = l2_normalize_backward(dcos.T @ e_hat, weight, eps)
    return loss, grad_embeddings, grad_weight
