"""The tutorial's four models behind one interface: encode, decode, reconstruct, sample."""

from .autoencoder import Autoencoder, LinearAutoencoder, ModelOutput, VAE, build_model
from .pca import PCA

__all__ = ["PCA", "Autoencoder", "LinearAutoencoder", "VAE", "ModelOutput", "build_model"]
