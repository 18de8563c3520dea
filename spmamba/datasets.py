"""The public datasets shipped checkpoints were trained on: where a user obtains each, how to cite it, what
is known of its licence, and the folder layout our commands expect. Model cards, the README's Data
section and ``spmamba data check`` read this one table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    folder: str  # the folder name under $SPMAMBA_DATA
    title: str
    citation: str
    source: str  # DOI or the publisher's page, as text
    licence: str  # as far as it could be verified
    hub_licence: str  # the Hugging Face card's `license:` value for weights trained on it
    modalities: tuple[str, ...]  # DICOM Modality codes
    task: str  # "anomaly" (train/NORMAL, val/<class>) or "segmentation" (images/ + masks/)
    layout: str

    @property
    def verified(self) -> bool:
        return not self.licence.lower().startswith("not verified")


ANOMALY_LAYOUT = (
    "train/NORMAL/ (normal images only), val/NORMAL/ and val/<ABNORMAL CLASS>/ (validation), optional "
    "ground_truth/<ABNORMAL CLASS>/ (pixel masks with the same file names)"
)
SEGMENTATION_LAYOUT = "images/ and masks/ (0/255 PNG masks with the same file names)"
NOT_VERIFIED = "not verified — check the source's terms before use"

DATASETS = {
    d.folder: d
    for d in (
        DatasetInfo(
            "zhanglab",
            "ZhangLab chest X-ray (Kermany et al. 2018)",
            "D. Kermany, K. Zhang, M. Goldbaum et al., Labeled Optical Coherence Tomography (OCT) and Chest "
            "X-Ray Images for Classification, Mendeley Data v2 (2018); Cell 172(5), 1122–1131 (2018)",
            "doi:10.17632/rscbjbr9sj.2",
            "CC BY 4.0",
            "cc-by-4.0",
            ("CR", "DX"),
            "anomaly",
            ANOMALY_LAYOUT,
        ),
        DatasetInfo(
            "lgg-flair",
            "LGG FLAIR brain MRI (Buda et al. 2019, TCGA-LGG)",
            "M. Buda, A. Saha, M. A. Mazurowski, Association of genomic subtypes of lower-grade gliomas with "
            "shape features automatically extracted by a deep learning algorithm, Computers in Biology and "
            "Medicine 109 (2019) 218–225; images from The Cancer Imaging Archive, TCGA-LGG collection",
            "doi:10.1016/j.compbiomed.2019.05.002; TCIA TCGA-LGG collection (cancerimagingarchive.net)",
            NOT_VERIFIED + " (the TCIA data-usage policy applies; cite both)",
            "other",
            ("MR",),
            "anomaly",
            ANOMALY_LAYOUT + "; file stems TCGA_<site>_<patient>_<date>_<slice>",
        ),
        DatasetInfo(
            "head-ct",
            "Head CT haemorrhage (Kitamura, Kaggle)",
            "F. Kitamura, Head CT – hemorrhage, Kaggle dataset",
            "kaggle.com/datasets/felipekitamura/head-ct-hemorrhage",
            NOT_VERIFIED,
            "other",
            ("CT",),
            "anomaly",
            ANOMALY_LAYOUT,
        ),
        DatasetInfo(
            "lgg-flair-seg",
            "LGG FLAIR brain MRI tumour segmentation (Buda et al. 2019, TCGA-LGG)",
            "M. Buda, A. Saha, M. A. Mazurowski, Computers in Biology and Medicine 109 (2019) 218–225; "
            "TCIA TCGA-LGG collection",
            "doi:10.1016/j.compbiomed.2019.05.002",
            NOT_VERIFIED + " (the TCIA data-usage policy applies; cite both)",
            "other",
            ("MR",),
            "segmentation",
            SEGMENTATION_LAYOUT + "; split by patient from the TCGA file stems",
        ),
        DatasetInfo(
            "ph2",
            "PH2 dermoscopy (Mendonça et al. 2013)",
            "T. Mendonça, P. M. Ferreira, J. S. Marques, A. R. S. Marcal, J. Rozeira, PH² – A dermoscopic image "
            "database for research and benchmarking, IEEE EMBC 2013, 5437–5440",
            "doi:10.1109/EMBC.2013.6610779; www.fc.up.pt/addi/ph2%20database.html",
            NOT_VERIFIED + " (distributed by its authors for research and benchmarking with citation)",
            "other",
            ("XC",),
            "segmentation",
            SEGMENTATION_LAYOUT,
        ),
        DatasetInfo(
            "busi",
            "BUSI breast ultrasound (Al-Dhabyani et al. 2020)",
            "W. Al-Dhabyani, M. Gomaa, H. Khaled, A. Fahmy, Dataset of breast ultrasound images, Data in Brief "
            "28 (2020) 104863",
            "doi:10.1016/j.dib.2019.104863",
            NOT_VERIFIED,
            "other",
            ("US",),
            "segmentation",
            SEGMENTATION_LAYOUT,
        ),
    )
}


def dataset_info(folder_name: str | None) -> DatasetInfo | None:
    """The registry entry for a dataset folder name (as recorded in a checkpoint), if it is a known one."""
    return DATASETS.get(folder_name or "")
