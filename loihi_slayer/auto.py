"""Networks built from a netx HDF5 file (lava-dl ``slayer.auto``).

:class:`SequentialNetwork` reads a ``.net`` file with :func:`loihi_slayer.hdf5.load_network`
and rebuilds the blocks (input, dense, conv, pool, flatten, average; CUBA and
sigma-delta neurons) with the file's integer weights, thresholds, decays,
delays and biases, so that the rebuilt network computes what the file
describes (every block with ``delay_shift=True``: the chip's timing) and can be
fine-tuned or exported again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import block as _block
from . import hdf5
from . import neuron as _neuron
from .errors import FormatError, ParameterError
from .neuron.norm import MeanOnlyBatchNorm

__all__ = ["SequentialNetwork", "get_classes", "get_neuron_params"]

#: neuron record class -> (neuron module, block module)
_FAMILIES: dict[type, tuple[Any, Any]] = {
    hdf5.CubaNeuron: (_neuron.cuba, _block.cuba),
    hdf5.SigmaDeltaNeuron: (_neuron.sigma_delta, _block.sigma_delta),
}


def get_classes(neuron_type: str | None = None) -> tuple[Any, Any]:
    """Neuron and block modules of a netx neuron ``type`` (None, 'CUBA', 'LOIHI' or 'SDNN')."""
    table = {
        None: hdf5.CubaNeuron,
        "CUBA": hdf5.CubaNeuron,
        "LOIHI": hdf5.CubaNeuron,
        "SDNN": hdf5.SigmaDeltaNeuron,
    }
    if neuron_type not in table:
        raise ParameterError(
            f"auto: neuron type {neuron_type!r} is not supported; known: "
            f"{sorted(k for k in table if k)}"
        )
    return _FAMILIES[table[neuron_type]]


def get_neuron_params(record: Any, neuron_class: Any = None) -> dict:
    """Constructor arguments of the training neuron for a neuron record."""
    if isinstance(record, hdf5.CubaNeuron):
        device = {"iDecay": record.i_decay, "vDecay": record.v_decay, "vThMant": record.v_th_mant}
        params = _neuron.cuba.neuron_params(device)
        if np.ndim(record.i_decay) or np.ndim(record.v_decay):
            raise ParameterError("auto: per-channel decays are not supported by SequentialNetwork")
        params["graded_spike"] = bool(record.graded_spike)
        return params
    if isinstance(record, hdf5.SigmaDeltaNeuron):
        vth = 1 if record.v_th_mant is None else record.v_th_mant
        params = _neuron.sigma_delta.neuron_params({"vThMant": vth})
        act = (record.activation or "relu").lower()
        params["activation"] = torch.nn.functional.relu if act == "relu" else None
        return params
    raise ParameterError(f"auto: neuron record {type(record).__name__} is not supported")


class SequentialNetwork(torch.nn.Module):
    """Sequential network from a netx HDF5 description (lava-dl ``auto.SequentialNetwork``).

    Parameters
    ----------
    network_config
        Path of the ``.net`` file.
    persistent_state
        Persistent neuron state.
    reduction
        ``'sum'`` or ``'mean'`` over all but the batch, channel and time axes
        of the output (lava-dl reshapes to 11 classes there, a leftover of
        its DVS gesture example; here the channel axis is kept), or None.
    weight_norm
        Enable weight normalization on the rebuilt synapses.
    count_log
        Blocks also return their event rate.
    """

    def __init__(
        self,
        network_config: str | os.PathLike,
        persistent_state: bool = False,
        reduction: str | None = None,
        weight_norm: bool = False,
        count_log: bool = False,
    ) -> None:
        super().__init__()
        if reduction not in (None, "sum", "mean"):
            raise ParameterError(f"auto: reduction = {reduction!r}; allowed: None, 'sum', 'mean'")
        self.persistent_state = bool(persistent_state)
        self.reduction = reduction
        self.weight_norm = bool(weight_norm)
        self.count_log = bool(count_log)
        self.network_config = os.fspath(network_config)
        net = hdf5.load_network(self.network_config)
        self.blocks = torch.nn.ModuleList()
        shape: tuple[int, ...] | None = None
        for i, layer in enumerate(net.layers):
            build = self._BUILDERS.get(type(layer))
            if build is None:
                raise FormatError(
                    f"layer type {layer.type_name!r} is not supported by SequentialNetwork",
                    file=self.network_config,
                    group=f"layer/{i}",
                    field="type",
                )
            blk = build(self, layer, shape)
            self.blocks.append(blk)
            shape = tuple(int(s) for s in layer.shape)

    # ----------------------------------------------------------------- helpers
    def _params(self, record: Any) -> tuple[dict, Any]:
        family = _FAMILIES.get(type(record))
        if family is None:
            raise ParameterError(f"auto: neuron record {type(record).__name__} is not supported")
        params = get_neuron_params(record)
        params["persistent_state"] = self.persistent_state
        return params, family[1]

    def _finish(self, blk: Any, layer: Any) -> Any:
        syn = blk.synapse
        w = torch.as_tensor(np.asarray(layer.weight, np.float64) / blk.neuron.w_scale)
        with torch.no_grad():
            syn.weight.data = w.to(syn.weight.dtype).reshape(syn.weight.shape)
        if getattr(layer, "delay", None) is not None and blk.delay is not None:
            d = torch.as_tensor(np.asarray(layer.delay, np.float32)).reshape(blk.delay.delay.shape)
            blk.delay.delay.data = d
        bias = getattr(layer, "bias", None)
        if bias is not None:
            self._set_bias(blk, np.asarray(bias, np.int64).reshape(-1))
        if self.weight_norm:
            syn.enable_weight_norm()
        return blk

    @staticmethod
    def _set_bias(blk: Any, bias: np.ndarray) -> None:
        n = blk.neuron
        if hasattr(n, "set_bias"):  # sigma-delta: bias mantissa on the 1/64 grid
            n.set_bias(torch.as_tensor(bias / 64.0, dtype=torch.float32))
            return
        # CUBA: the bias comes from a frozen mean-only norm, -Q(mean) * 64 == bias
        if np.any(bias % 2) or bias.min() < -254 or bias.max() > 256:
            raise ParameterError(
                f"auto: CUBA bias {bias.tolist()[:4]}... is not an even value in [-254, 256], "
                f"the range a mean-only norm can express"
            )
        norm = MeanOnlyBatchNorm(bias.size, pre_hook_fx=n.quantize_8bit)
        norm.running_mean.copy_(torch.as_tensor(-bias / 64.0, dtype=torch.float32))
        norm.update = False
        n.norm = norm

    # ---------------------------------------------------------------- builders
    def _input(self, layer: hdf5.InputLayer, _shape) -> Any:
        if layer.neuron is None:
            return _block.cuba.Input(None, count_log=self.count_log, shape=layer.shape)
        params, fam = self._params(layer.neuron)
        w = None if layer.weight is None else layer.weight / 64.0
        b = None if layer.bias is None else layer.bias / 64.0
        return fam.Input(params, w, b, True, self.count_log, shape=layer.shape)

    def _dense(self, layer: hdf5.DenseLayer, _shape) -> Any:
        if layer.neuron is None:
            raise ParameterError("auto: a dense layer without neuron is not supported")
        params, fam = self._params(layer.neuron)
        w = np.asarray(layer.weight)
        if getattr(layer.neuron, "sigma_output", False):
            blk = fam.Output(params, w.shape[1], w.shape[0], count_log=self.count_log)
        else:
            blk = fam.Dense(
                params,
                w.shape[1],
                w.shape[0],
                delay=layer.delay is not None,
                delay_shift=True,
                count_log=self.count_log,
            )
        return self._finish(blk, layer)

    def _conv(self, layer: hdf5.ConvLayer, shape) -> Any:
        params, fam = self._params(layer.neuron)
        w = np.asarray(layer.weight)
        blk = fam.Conv(
            params,
            w.shape[1] * layer.groups,
            w.shape[0],
            tuple(w.shape[2:]),
            layer.stride,
            layer.padding,
            layer.dilation,
            layer.groups,
            delay=layer.delay is not None,
            delay_shift=True,
            count_log=self.count_log,
            input_shape=None if shape is None else shape[1:],
        )
        return self._finish(blk, layer)

    def _pool(self, layer: hdf5.PoolLayer, shape) -> Any:
        if layer.neuron is None:
            raise ParameterError("auto: a pool layer without neuron is not supported")
        params, fam = self._params(layer.neuron)
        blk = fam.Pool(
            params,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            layer.dilation,
            delay=layer.delay is not None,
            delay_shift=True,
            count_log=self.count_log,
            input_shape=None if shape is None else shape,
        )
        return self._finish(blk, layer)

    def _flatten(self, layer: hdf5.FlattenLayer, _shape) -> Any:
        return _block.cuba.Flatten(count_log=self.count_log)

    def _average(self, layer: hdf5.AverageLayer, _shape) -> Any:
        return _block.cuba.Average(int(layer.shape[0]), count_log=self.count_log)

    _BUILDERS: dict[type, Callable[..., Any]] = {
        hdf5.InputLayer: _input,
        hdf5.DenseLayer: _dense,
        hdf5.ConvLayer: _conv,
        hdf5.PoolLayer: _pool,
        hdf5.FlattenLayer: _flatten,
        hdf5.AverageLayer: _average,
    }

    def forward(self, spike: torch.Tensor) -> torch.Tensor:
        """Run the blocks in order; optional reduction over the spatial axes."""
        for blk in self.blocks:
            spike = blk(spike)
            if isinstance(spike, tuple):
                spike = spike[0]
        if self.reduction is not None:
            flat = spike.reshape(spike.shape[0], spike.shape[1], -1, spike.shape[-1])
            spike = flat.sum(dim=2) if self.reduction == "sum" else flat.mean(dim=2)
        return spike

    def export_hdf5(self, filename: str | os.PathLike) -> None:
        """Write the (possibly fine-tuned) network back to a netx file."""
        _block.export_network(list(self.blocks), filename)
