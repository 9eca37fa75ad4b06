"""Pure tensor math: the neuron (step and parallel), surrogates, encoders, decoders, spike statistics."""
