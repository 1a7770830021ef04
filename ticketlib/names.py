"""The registered names that analysis orders and groups by, apart from their torch implementations
(nets/inits.py and imp/conditions.py register the same names; tests/test_registries.py checks
that they agree). A scheme or condition registered later without a line here still works: tables
put it after these, and figures give it a colour of its own.
"""
SCHEMES = [  # every initializer, in the order of every legend and table
    "normal", "uniform", "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform",
    "xavier_normal_half", "xavier_normal_double", "xavier_uniform_half", "xavier_uniform_double",
    "lecun_normal", "lecun_uniform", "orthogonal", "truncated_normal", "pytorch_default", "signed_constant",
    "uniform_symmetric", "uniform_centered",
]
SEED2020_INITS = ["normal", "uniform", "kaiming_normal", "kaiming_uniform", "xavier_normal",
                  "xavier_uniform", "xavier_normal_half", "xavier_uniform_half",
                  "xavier_normal_double", "xavier_uniform_double"]
FACTOR_INITS = ["uniform_symmetric", "uniform_centered"]  # added to separate scale, fan and mean
STUDY_INITS = [name for name in SCHEMES if name not in FACTOR_INITS]  # the 16 schemes of the main grids
REPRESENTATIVES = ["xavier_normal", "kaiming_normal", "orthogonal", "signed_constant", "normal", "uniform"]  # the mechanism grids' six
FAMILIES = {  # for figures: schemes side by side with their relatives
    "unscaled: N(0, 1), U(0, 1)": ["normal", "uniform"],
    "Kaiming (He)": ["kaiming_normal", "kaiming_uniform"],
    "Xavier (Glorot)": ["xavier_normal", "xavier_uniform", "xavier_normal_half", "xavier_normal_double",
                        "xavier_uniform_half", "xavier_uniform_double"],
    "LeCun": ["lecun_normal", "lecun_uniform"],
    "others": ["orthogonal", "truncated_normal", "pytorch_default", "signed_constant"],
    "zero-mean, fan-free": FACTOR_INITS,
}
CONDITIONS = [  # IMP's ticket, its controls, then the mechanism probes
    "ticket", "reinit", "random", "copy", "sign_kept", "random_signs", "shuffled", "rescaled",
    "init_magnitude", "init_magnitude_global", "snip", "snip_global", "grasp", "grasp_global",
    "synflow", "synflow_global",
]
