//! ONNX export: a trained classifier as an inference graph that onnxruntime (or any runtime at
//! opset 18) runs. BatchNorm is in eval form (running statistics), dropout is gone.
//!
//! The input contract, also written into the file's metadata: `image`, float32 RGB in [0, 1],
//! NCHW `[N, 3, H, W]`: a photo centre-cropped to a square, at any size. The graph resizes it as
//! Kiln does, so an app needs no resizing of its own: to the presize with antialiasing (the
//! presize's triangle filter), then bilinearly to the trained size S (the validation
//! transform's align-corners sampling, which a plain resize by PIL or a canvas does not
//! reproduce at small sizes). ImageNet normalisation happens inside the graph too. The output,
//! `probabilities` `[N, classes]`, is the softmax of the logits, as Kiln's `predict` gives.

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::Tensor;
use prost::Message;

use super::onnx_proto as pb;
use super::{ExportError, cpu_classifier, f32_values};
use crate::augment::{IMAGENET_MEAN, IMAGENET_STD};
use super::ModelHeader;
use crate::model::Classifier;
use crate::model::efficientnet::{EfficientNet, MBConvBlock};
use crate::model::resnet::{Block, ResNet};
use crate::model::head::HeadLayer;
use crate::model::{Body, Head};

/// The operator set the graph is written for (opset 18 = ONNX 1.13, onnxruntime ≥ 1.14): the
/// first with Resize's `antialias` and `axes`.
pub const OPSET: i64 = 18;
/// ONNX IR version 8 goes with opset 18.
const IR_VERSION: i64 = 8;
pub const INPUT: &str = "image";
pub const OUTPUT: &str = "probabilities";

/// The model as an ONNX file (see the module docs for its input and output).
pub async fn to_onnx(header: &ModelHeader, model: &Classifier) -> Result<Vec<u8>, ExportError> {
    let model = cpu_classifier(header, model).await?;
    let size = header.config.aug.size;
    let mut g = Graph { hw: [size, size], ..Graph::default() };
    let x = g.resize(INPUT.into(), header.presize as usize, true, "resize_presize");
    let x = g.resize(x, size, false, "resize_size");
    let x = g.normalise(&x);
    let features = match &model.body {
        Body::ResNet(m) => g.resnet(x, m),
        Body::EfficientNet(m) => g.efficientnet(x, m),
    };
    let logits = g.head(features, &model.head, header.config.model.head.concat_pool);
    let thresh = header.config.loss_func.thresh();
    match thresh {
        None => g.op("Softmax", "softmax", vec![logits], vec![int("axis", 1)], Some(OUTPUT)),
        Some(_) => g.op("Sigmoid", "sigmoid", vec![logits], vec![], Some(OUTPUT)),
    };

    let k = header.classes.len();
    let input_doc = format!(
        "RGB float32 in [0, 1], NCHW [N, 3, H, W]: a photo centre-cropped to a square, at any size; the graph resizes it as Kiln does (to {} px with antialiasing, then bilinearly to {size}) and applies ImageNet normalisation",
        header.presize
    );
    let graph = pb::GraphProto {
        node: g.nodes,
        name: "kiln".into(),
        initializer: g.initializers,
        doc_string: format!("{} classifier for {k} classes, trained with Kiln", header.config.model.arch.name()),
        input: vec![value_info(INPUT, &[Dim::Batch, Dim::Fixed(3), Dim::Named("H"), Dim::Named("W")], &input_doc)],
        output: vec![value_info(OUTPUT, &[Dim::Batch, Dim::Fixed(k)], &match thresh {
            None => "softmax over the classes, in the order of the `classes` metadata".to_string(),
            Some(t) => format!("one sigmoid per class, in the order of the `classes` metadata: the classes above {t} are predicted (none of them: none of these)"),
        })],
    };
    let meta = |key: &str, value: String| pb::StringStringEntryProto { key: key.into(), value };
    let file = pb::ModelProto {
        ir_version: IR_VERSION,
        producer_name: "kiln".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: String::new(),
        model_version: 1,
        doc_string: input_doc.clone(),
        graph: Some(graph),
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        metadata_props: super::metadata(header)
            .into_iter()
            .chain([
                ("input", input_doc),
                ("normalization", format!("mean {IMAGENET_MEAN:?}, std {IMAGENET_STD:?} (ImageNet), applied inside the graph")),
            ])
            .map(|(key, value)| meta(key, value))
            .collect(),
    };
    Ok(file.encode_to_vec())
}

enum Dim {
    Batch,
    Fixed(usize),
    Named(&'static str),
}

fn value_info(name: &str, dims: &[Dim], doc: &str) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Dim::Batch => pb::Dimension { dim_value: None, dim_param: Some("N".into()) },
            Dim::Fixed(n) => pb::Dimension { dim_value: Some(*n as i64), dim_param: None },
            Dim::Named(name) => pb::Dimension { dim_value: None, dim_param: Some((*name).into()) },
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            tensor_type: Some(pb::TensorTypeProto { elem_type: pb::data_type::FLOAT, shape: Some(pb::TensorShapeProto { dim }) }),
        }),
        doc_string: doc.into(),
    }
}

fn int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), i, r#type: pb::attribute_type::INT, ..Default::default() }
}
fn float(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), f, r#type: pb::attribute_type::FLOAT, ..Default::default() }
}
fn string(name: &str, s: &str) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), s: s.as_bytes().to_vec(), r#type: pb::attribute_type::STRING, ..Default::default() }
}
fn ints(name: &str, v: &[usize]) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), ints: v.iter().map(|&x| x as i64).collect(), r#type: pb::attribute_type::INTS, ..Default::default() }
}

/// burn's padding as ONNX's `pads` ([top, left, bottom, right]) for an input of `hw`: "same"
/// is resolved here since the graph's size is fixed.
fn pads(padding: &PaddingConfig2d, hw: [usize; 2], kernel: [usize; 2], stride: [usize; 2]) -> [usize; 4] {
    let [(t, b), (l, r)] = crate::mixed_precision::conv_padding(padding, hw, kernel, stride);
    [t, l, b, r]
}

/// Output size of a convolution or pooling window along one axis (`pad` = both sides).
fn out_size(n: usize, k: usize, s: usize, d: usize, pad: usize, ceil: bool) -> usize {
    let span = n + pad - d * (k - 1) - 1;
    if ceil { span.div_ceil(s) + 1 } else { span / s + 1 }
}

/// Builds the node list, naming each weight after its place in Kiln's model (`body.layer1.0.conv1.weight`)
/// so the graph reads like the model in a viewer such as Netron.
#[derive(Default)]
struct Graph {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    /// Spatial size of the current feature map, which resolves "same" padding.
    hw: [usize; 2],
    relu6_bounds: Option<[String; 2]>,
}

impl Graph {
    fn constant(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        self.initializers.push(pb::TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: pb::data_type::FLOAT,
            name: name.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name.into()
    }

    fn weight<const D: usize>(&mut self, name: &str, t: Tensor<D>) -> String {
        let dims = t.dims();
        self.constant(name, &dims, &f32_values(t))
    }

    /// One node; its output is named after the node unless `output` says otherwise.
    fn op(&mut self, op_type: &str, name: &str, input: Vec<String>, attribute: Vec<pb::AttributeProto>, output: Option<&str>) -> String {
        let out = output.map(str::to_string).unwrap_or_else(|| format!("{name}:{}", op_type.to_lowercase()));
        self.nodes.push(pb::NodeProto { input, output: vec![out.clone()], name: format!("{name}:{op_type}"), op_type: op_type.into(), attribute });
        out
    }

    /// Resize the image to `side`² (bilinear). `presize`: the presize's resize (antialiased
    /// triangle filter on pixel centres, as the image crate's and PIL's); else the validation
    /// transform's (align-corners sampling, no antialiasing, as its grid sample).
    fn resize(&mut self, x: String, side: usize, presize: bool, name: &str) -> String {
        let sizes = format!("{name}.sizes");
        self.initializers.push(pb::TensorProto {
            dims: vec![2],
            data_type: pb::data_type::INT64,
            name: sizes.clone(),
            raw_data: [side as i64; 2].iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        let attrs = vec![
            string("mode", "linear"),
            string("coordinate_transformation_mode", if presize { "half_pixel" } else { "align_corners" }),
            int("antialias", presize as i64),
            ints("axes", &[2, 3]),
        ];
        self.op("Resize", name, vec![x, String::new(), String::new(), sizes], attrs, None)
    }

    fn normalise(&mut self, x: &str) -> String {
        let mean = self.constant("imagenet_mean", &[1, 3, 1, 1], &IMAGENET_MEAN);
        let std = self.constant("imagenet_std", &[1, 3, 1, 1], &IMAGENET_STD);
        let centred = self.op("Sub", "normalise", vec![x.into(), mean], vec![], None);
        self.op("Div", "normalise", vec![centred, std], vec![], None)
    }

    /// A sliding window (convolution or pooling) over the current feature map: its ONNX
    /// attributes (kernel, strides, explicit pads, dilations), and the map's size after it.
    fn window(&mut self, padding: &PaddingConfig2d, kernel: [usize; 2], stride: [usize; 2], dilation: [usize; 2], ceil: bool) -> Vec<pb::AttributeProto> {
        let p = pads(padding, self.hw, kernel, stride);
        self.hw = [0, 1].map(|i| out_size(self.hw[i], kernel[i], stride[i], dilation[i], p[i] + p[i + 2], ceil));
        vec![ints("kernel_shape", &kernel), ints("strides", &stride), ints("pads", &p), ints("dilations", &dilation)]
    }

    fn conv(&mut self, x: String, c: &Conv2d, name: &str) -> String {
        let mut attrs = self.window(&c.padding, c.kernel_size, c.stride, c.dilation, false);
        attrs.push(int("group", c.groups as i64));
        let mut inputs = vec![x, self.weight(&format!("{name}.weight"), c.weight.val())];
        if let Some(b) = &c.bias {
            inputs.push(self.weight(&format!("{name}.bias"), b.val()));
        }
        self.op("Conv", name, inputs, attrs, None)
    }

    fn batchnorm(&mut self, x: String, bn: &BatchNorm, name: &str) -> String {
        let inputs = vec![
            x,
            self.weight(&format!("{name}.weight"), bn.gamma.val()),
            self.weight(&format!("{name}.bias"), bn.beta.val()),
            self.weight(&format!("{name}.running_mean"), bn.running_mean.value()),
            self.weight(&format!("{name}.running_var"), bn.running_var.value()),
        ];
        self.op("BatchNormalization", name, inputs, vec![float("epsilon", bn.epsilon as f32)], None)
    }

    /// The head's BatchNorm1d on [N, C], folded into one scale and shift per feature (in f64):
    /// rank-2 BatchNormalization is not supported by every runtime.
    fn batchnorm_2d(&mut self, x: String, bn: &BatchNorm, name: &str) -> String {
        let [g, b, m, v] = [bn.gamma.val(), bn.beta.val(), bn.running_mean.value(), bn.running_var.value()].map(f32_values);
        let scale: Vec<f64> = g.iter().zip(&v).map(|(&g, &v)| g as f64 / (v as f64 + bn.epsilon).sqrt()).collect();
        let shift: Vec<f32> = b.iter().zip(&m).zip(&scale).map(|((&b, &m), &s)| (b as f64 - m as f64 * s) as f32).collect();
        let scale: Vec<f32> = scale.into_iter().map(|s| s as f32).collect();
        let n = scale.len();
        let scale = self.constant(&format!("{name}.scale"), &[n], &scale);
        let shift = self.constant(&format!("{name}.shift"), &[n], &shift);
        let y = self.op("Mul", name, vec![x, scale], vec![], None);
        self.op("Add", name, vec![y, shift], vec![], None)
    }

    fn linear(&mut self, x: String, l: &Linear, name: &str) -> String {
        // burn stores the weight as [in, out], which is MatMul's right operand as it is.
        let w = self.weight(&format!("{name}.weight"), l.weight.val());
        let y = self.op("MatMul", name, vec![x, w], vec![], None);
        match &l.bias {
            Some(b) => {
                let b = self.weight(&format!("{name}.bias"), b.val());
                self.op("Add", name, vec![y, b], vec![], None)
            }
            None => y,
        }
    }

    fn relu(&mut self, x: String, name: &str) -> String {
        self.op("Relu", name, vec![x], vec![], None)
    }

    fn relu6(&mut self, x: String, name: &str) -> String {
        let [lo, hi] = match &self.relu6_bounds {
            Some(b) => b.clone(),
            None => {
                let b = [self.constant("relu6_min", &[], &[0.0]), self.constant("relu6_max", &[], &[6.0])];
                self.relu6_bounds = Some(b.clone());
                b
            }
        };
        self.op("Clip", name, vec![x, lo, hi], vec![], None)
    }

    fn maxpool(&mut self, x: String, m: &MaxPool2d, name: &str) -> String {
        let mut attrs = self.window(&m.padding, m.kernel_size, m.stride, m.dilation, m.ceil_mode);
        attrs.push(int("ceil_mode", m.ceil_mode as i64));
        self.op("MaxPool", name, vec![x], attrs, None)
    }

    fn resnet(&mut self, x: String, m: &ResNet) -> String {
        let x = self.conv(x, &m.conv1, "body.conv1");
        let x = self.batchnorm(x, &m.bn1, "body.bn1");
        let x = self.relu(x, "body.relu");
        let mut x = self.maxpool(x, &m.maxpool, "body.maxpool");
        for (i, layer) in [&m.layer1, &m.layer2, &m.layer3, &m.layer4].into_iter().enumerate() {
            for (j, block) in layer.iter().enumerate() {
                x = self.block(x, block, &format!("body.layer{}.{j}", i + 1));
            }
        }
        x
    }

    fn block(&mut self, x: String, b: &Block, name: &str) -> String {
        let hw = self.hw;
        let identity = match &b.downsample {
            Some(d) => {
                let y = self.conv(x.clone(), &d.conv, &format!("{name}.downsample.0"));
                self.hw = hw;
                self.batchnorm(y, &d.bn, &format!("{name}.downsample.1"))
            }
            None => x.clone(),
        };
        let y = self.conv(x, &b.conv1, &format!("{name}.conv1"));
        let y = self.batchnorm(y, &b.bn1, &format!("{name}.bn1"));
        let y = self.relu(y, &format!("{name}.relu1"));
        let y = self.conv(y, &b.conv2, &format!("{name}.conv2"));
        let mut y = self.batchnorm(y, &b.bn2, &format!("{name}.bn2"));
        if let (Some(c), Some(bn)) = (&b.conv3, &b.bn3) {
            y = self.relu(y, &format!("{name}.relu3"));
            y = self.conv(y, c, &format!("{name}.conv3"));
            y = self.batchnorm(y, bn, &format!("{name}.bn3"));
        }
        let y = self.op("Add", name, vec![y, identity], vec![], None);
        self.relu(y, &format!("{name}.relu2"))
    }

    fn efficientnet(&mut self, x: String, m: &EfficientNet) -> String {
        let x = self.conv(x, &m.conv_stem, "body.conv_stem");
        let x = self.batchnorm(x, &m.bn0, "body.bn0");
        let mut x = self.relu6(x, "body.stem_act");
        for (i, block) in m.blocks.iter().enumerate() {
            x = self.mbconv(x, block, &format!("body.blocks.{i}"));
        }
        let x = self.conv(x, &m.conv_head, "body.conv_head");
        let x = self.batchnorm(x, &m.bn1, "body.bn1");
        self.relu6(x, "body.head_act")
    }

    fn mbconv(&mut self, input: String, b: &MBConvBlock, name: &str) -> String {
        let mut x = input.clone();
        if let (Some(c), Some(bn)) = (&b.expand_conv, &b.bn0) {
            x = self.conv(x, c, &format!("{name}.expand_conv"));
            x = self.batchnorm(x, bn, &format!("{name}.bn0"));
            x = self.relu6(x, &format!("{name}.expand_act"));
        }
        x = self.conv(x, &b.depthwise_conv, &format!("{name}.depthwise_conv"));
        x = self.batchnorm(x, &b.bn1, &format!("{name}.bn1"));
        x = self.relu6(x, &format!("{name}.depthwise_act"));
        x = self.conv(x, &b.project_conv, &format!("{name}.project_conv"));
        x = self.batchnorm(x, &b.bn2, &format!("{name}.bn2"));
        if b.skip { self.op("Add", name, vec![x, input], vec![], None) } else { x }
    }

    /// fastai's head in eval form: [max ‖ avg] pool (or avg alone), flatten, BN (first_bn),
    /// linear, ReLU, BN, linear, BN (bn_final).
    fn head(&mut self, x: String, h: &Head, concat_pool: bool) -> String {
        let avg = self.op("GlobalAveragePool", "head.pool", vec![x.clone()], vec![], None);
        let x = if concat_pool {
            let max = self.op("GlobalMaxPool", "head.pool", vec![x], vec![], None);
            self.op("Concat", "head.pool", vec![max, avg], vec![int("axis", 1)], None)
        } else {
            avg
        };
        let mut x = self.op("Flatten", "head.flatten", vec![x], vec![int("axis", 1)], None);
        for (name, layer) in h.layers() {
            let name = format!("head.{name}");
            x = match layer {
                HeadLayer::BatchNorm(bn) => self.batchnorm_2d(x, bn, &name),
                HeadLayer::Dropout(_) => x,
                HeadLayer::Linear(l) => self.linear(x, l, &name),
                HeadLayer::Relu => self.relu(x, &name),
            };
        }
        x
    }
}
