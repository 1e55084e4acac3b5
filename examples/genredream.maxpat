{
 "patcher": {
  "fileversion": 1,
  "appversion": {
   "major": 8,
   "minor": 5,
   "revision": 0,
   "architecture": "x64",
   "modernui": 1
  },
  "classnamespace": "box",
  "rect": [
   50.0,
   80.0,
   1400.0,
   520.0
  ],
  "bglocked": 0,
  "openinpresentation": 0,
  "default_fontsize": 12.0,
  "default_fontface": 0,
  "default_fontname": "Arial",
  "gridonopen": 1,
  "gridsize": [
   15.0,
   15.0
  ],
  "gridsnaponopen": 1,
  "objectsnaponopen": 1,
  "statusbarvisible": 2,
  "toolbarvisible": 1,
  "boxanimatetime": 200,
  "description": "genredream: genre scores and dream control over OSC",
  "digest": "",
  "tags": "",
  "style": "",
  "subpatcher_template": "",
  "assistshowspatchername": 0,
  "boxes": [
   {
    "box": {
     "id": "c-title",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      10.0,
      700.0,
      22.0
     ],
     "text": "genredream for Max: start `genredream run --device <your interface> --osc-port 9137 --osc-reply 127.0.0.1:9138 --dream` (audio via the sound card; --dream lets the dream toggle work, without it the engine answers `unavailable`). This patch has never been opened in Max: it mirrors examples/genredream.pd, whose messages are tested by running it."
    }
   },
   {
    "box": {
     "id": "c-ports",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      40.0,
      700.0,
      22.0
     ],
     "text": "Max's [udpsend] cannot receive: replies come to [udpreceive 9138], subscribed on load (and by --osc-reply)."
    }
   },
   {
    "box": {
     "id": "send",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      430.0,
      160.0,
      22.0
     ],
     "text": "udpsend 127.0.0.1 9137"
    }
   },
   {
    "box": {
     "id": "lb",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      20.0,
      80.0,
      60.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "loadbang"
    }
   },
   {
    "box": {
     "id": "renew",
     "maxclass": "newobj",
     "text": "metro 20000",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      100.0,
      80.0,
      90.0,
      22.0
     ]
    }
   },
   {
    "box": {
     "id": "c-renew",
     "maxclass": "comment",
     "text": "renews the subscription every 20 s: it is a lease (the engine's --osc-lease, 60 s by default)",
     "patching_rect": [
      200.0,
      80.0,
      520.0,
      22.0
     ]
    }
   },
   {
    "box": {
     "id": "m-sub",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      20.0,
      110.0,
      260.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "/genredream/subscribe 127.0.0.1 9138 none"
    }
   },
   {
    "box": {
     "id": "c-ctl",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      150.0,
      420.0,
      22.0
     ],
     "text": "control: the same messages as examples/genredream.pd sends (tested there by running it); each is acknowledged on /genredream/ack or answered on /genredream/error"
    }
   },
   {
    "box": {
     "id": "m2",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      500.0,
      180.0,
      230.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "/genredream/status"
    }
   },
   {
    "box": {
     "id": "tgl",
     "maxclass": "toggle",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      20.0,
      280.0,
      24.0,
      24.0
     ],
     "outlettype": [
      ""
     ],
     "parameter_enable": 0
    }
   },
   {
    "box": {
     "id": "c-tgl",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      50.0,
      280.0,
      120.0,
      22.0
     ],
     "text": "dream on/off"
    }
   },
   {
    "box": {
     "id": "p-dream",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      20.0,
      310.0,
      140.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "prepend /genredream/dream"
    }
   },
   {
    "box": {
     "id": "mix",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      200.0,
      280.0,
      60.0,
      22.0
     ],
     "outlettype": [
      "",
      ""
     ],
     "minimum": 0.0,
     "maximum": 1.0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "c-mix",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      265.0,
      280.0,
      120.0,
      22.0
     ],
     "text": "mix 0..1"
    }
   },
   {
    "box": {
     "id": "p-mix",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      200.0,
      310.0,
      160.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "prepend /genredream/dream/mix"
    }
   },
   {
    "box": {
     "id": "c-rx",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      760.0,
      80.0,
      420.0,
      22.0
     ],
     "text": "replies: scores of every window, the top genre, acks, errors, status"
    }
   },
   {
    "box": {
     "id": "recv",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      760.0,
      110.0,
      120.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "udpreceive 9138"
    }
   },
   {
    "box": {
     "id": "route",
     "maxclass": "newobj",
     "numinlets": 7,
     "numoutlets": 7,
     "patching_rect": [
      760.0,
      140.0,
      560.0,
      22.0
     ],
     "outlettype": [
      "",
      "",
      "",
      "",
      "",
      "",
      ""
     ],
     "text": "route /genredream/scores /genredream/top /genredream/latency /genredream/ack /genredream/error /genredream/status"
    }
   },
   {
    "box": {
     "id": "slice",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "patching_rect": [
      760.0,
      180.0,
      70.0,
      22.0
     ],
     "outlettype": [
      "",
      ""
     ],
     "text": "zl slice 1"
    }
   },
   {
    "box": {
     "id": "delace",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "patching_rect": [
      760.0,
      210.0,
      70.0,
      22.0
     ],
     "outlettype": [
      "",
      ""
     ],
     "text": "zl delace"
    }
   },
   {
    "box": {
     "id": "ms",
     "maxclass": "multislider",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      760.0,
      280.0,
      300.0,
      120.0
     ],
     "outlettype": [
      "",
      ""
     ],
     "setminmax": [
      0.0,
      1.0
     ],
     "size": 50,
     "setstyle": 1,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "p-labels",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      860.0,
      240.0,
      70.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "labels",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      860.0,
      410.0,
      500.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": ""
    }
   },
   {
    "box": {
     "id": "c-ms",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      1070.0,
      280.0,
      200.0,
      22.0
     ],
     "text": "one slider per label, in the order of the labels below"
    }
   },
   {
    "box": {
     "id": "p-top",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      1100.0,
      180.0,
      70.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "top",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      1100.0,
      210.0,
      220.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": ""
    }
   },
   {
    "box": {
     "id": "p-lat2",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "patching_rect": [
      1100.0,
      240.0,
      70.0,
      22.0
     ],
     "outlettype": [
      "",
      ""
     ],
     "text": "zl slice 1"
    }
   },
   {
    "box": {
     "id": "latms",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      1100.0,
      270.0,
      60.0,
      22.0
     ],
     "outlettype": [
      "",
      ""
     ],
     "format": 6
    }
   },
   {
    "box": {
     "id": "c-latms",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      1165.0,
      270.0,
      100.0,
      22.0
     ],
     "text": "latency ms"
    }
   },
   {
    "box": {
     "id": "print",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      760.0,
      460.0,
      140.0,
      22.0
     ],
     "text": "print genredream"
    }
   }
  ],
  "lines": [
   {
    "patchline": {
     "source": [
      "lb",
      0
     ],
     "destination": [
      "renew",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "m-sub",
      0
     ],
     "destination": [
      "send",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "m2",
      0
     ],
     "destination": [
      "send",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "tgl",
      0
     ],
     "destination": [
      "p-dream",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "p-dream",
      0
     ],
     "destination": [
      "send",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "mix",
      0
     ],
     "destination": [
      "p-mix",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "p-mix",
      0
     ],
     "destination": [
      "send",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "recv",
      0
     ],
     "destination": [
      "route",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "route",
      0
     ],
     "destination": [
      "slice",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "slice",
      1
     ],
     "destination": [
      "delace",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "delace",
      1
     ],
     "destination": [
      "ms",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "delace",
      0
     ],
     "destination": [
      "p-labels",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "p-labels",
      0
     ],
     "destination": [
      "labels",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "route",
      1
     ],
     "destination": [
      "p-top",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "p-top",
      0
     ],
     "destination": [
      "top",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "route",
      2
     ],
     "destination": [
      "p-lat2",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "p-lat2",
      1
     ],
     "destination": [
      "latms",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "route",
      3
     ],
     "destination": [
      "print",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "route",
      4
     ],
     "destination": [
      "print",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "route",
      5
     ],
     "destination": [
      "print",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "renew",
      0
     ],
     "destination": [
      "m-sub",
      0
     ]
    }
   }
  ],
  "dependency_cache": [],
  "autosave": 0
 }
}
