"""keras_dyconv: dynamic convolution for Keras 3 and the DyCNN + Bi-LSTM emotion model.

from keras_dyconv import DynamicConv          # 2D, as in the paper
from keras_dyconv import DynamicConv1D, TemperatureAnnealing, build_dycnn_bilstm
"""

from keras_dyconv.callbacks import TemperatureAnnealing
from keras_dyconv.layers import BaseDynamicConv, DynamicConv, DynamicConv1D, DynamicConv2D
from keras_dyconv.models import AttentionPooling, build_dycnn_bilstm, model_cost

__all__ = [
    "AttentionPooling",
    "BaseDynamicConv",
    "DynamicConv",
    "DynamicConv1D",
    "DynamicConv2D",
    "TemperatureAnnealing",
    "build_dycnn_bilstm",
    "model_cost",
]
