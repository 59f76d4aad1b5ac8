import type { Theme } from 'vitepress';
import DefaultTheme from 'vitepress/theme';
import Chart from './components/Chart.vue';

export default {
  extends: DefaultTheme,
  enhanceApp({ app }) {
    app.component('Chart', Chart);
  },
} satisfies Theme;
